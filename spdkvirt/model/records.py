"""The records of the virtualization database as frozen values, and their store form.

Each class reads its record with ``of(record)`` and writes it back with ``record()``; the store
validates the result against ``schemas/records/<kind>.schema.json``. Fields that are not needed by
the control logic stay in the record dict untouched (``extra``), so rewriting a record never drops
what another version of spdkvirt put there.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

SCHEMA_VERSION = 1

#: leg states: new (blank, part of a volume being created), in_sync (holds the volume's data),
#: rebuilding (being filled from the in-sync legs)
LEG_STATES = ("new", "in_sync", "rebuilding")
USABLE_DEVICE = "available"


def now() -> str:
    """The current time as records keep it (UTC, ISO 8601 with microseconds)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _extra(record: Mapping[str, Any], known: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, v) for k, v in record.items() if k not in known))


FENCE_METHODS = ("listeners", "ana", "stop")


@dataclass(frozen=True)
class Fence:
    """How the master reaches a node's SPDK out of band (over SSH, or ``unix://`` for a target on
    the controller's own machine) to stop it serving volumes when the node's agent is gone:
    ``listeners`` removes the volume exports, ``ana`` sets the NVMe-oF listeners inaccessible (and
    removes iSCSI exports), ``stop`` stops the SPDK target."""

    url: str
    method: str = "listeners"

    def check(self) -> None:
        if not self.url.startswith(("ssh://", "unix:///")):
            want = "ssh://user@host[:port]/path/to/spdk.sock or unix:///path/to/spdk.sock"
            raise ValueError(f"fence url must be {want}, not {self.url!r}")
        if self.method not in FENCE_METHODS:
            raise ValueError(f"fence method must be one of {', '.join(FENCE_METHODS)}, not {self.method!r}")

    @classmethod
    def of(cls, r: Mapping[str, Any] | None) -> Fence | None:
        return None if not r else cls(r["url"], r.get("method", "listeners"))

    def record(self) -> dict[str, Any]:
        return {"url": self.url, "method": self.method}


@dataclass(frozen=True)
class Node:
    node_id: str
    address: str
    state: str = "up"
    generation: int = 1
    boot_id: str = ""
    nvmf_port: int = 4420
    extra: tuple[tuple[str, Any], ...] = ()
    spdk: str = ""
    iscsi_port: int = 3260
    fence: Fence | None = None

    FIELDS = (
        "kind", "schema_version", "node_id", "address", "state", "generation", "boot_id", "nvmf_port", "spdk",
        "iscsi_port", "fence",
    )  # fmt: skip

    @classmethod
    def of(cls, r: Mapping[str, Any]) -> Node:
        return cls(
            r["node_id"],
            r["address"],
            r["state"],
            r["generation"],
            r.get("boot_id", ""),
            r.get("nvmf_port", 4420),
            _extra(r, cls.FIELDS),
            r.get("spdk", ""),
            r.get("iscsi_port", 3260),
            Fence.of(r.get("fence")),
        )

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(kind="node", schema_version=SCHEMA_VERSION, node_id=self.node_id, address=self.address)
        out.update(state=self.state, generation=self.generation, nvmf_port=self.nvmf_port)
        if self.boot_id:
            out["boot_id"] = self.boot_id
        if self.spdk:
            out["spdk"] = self.spdk
        out["iscsi_port"] = self.iscsi_port
        if self.fence is not None:
            out["fence"] = self.fence.record()
        return out


@dataclass(frozen=True)
class Device:
    node: str
    device_id: str
    bdev: str
    size_bytes: int
    block_size: int
    state: str = "available"
    generation: int = 1
    uuid: str = ""
    lvstore: str = ""
    lvstore_uuid: str = ""
    cluster_size: int = 0
    free_bytes: int = 0
    extra: tuple[tuple[str, Any], ...] = ()

    FIELDS = (
        "kind", "schema_version", "node", "device_id", "bdev", "size_bytes", "block_size", "state", "generation",
        "uuid", "lvstore",
    )  # fmt: skip

    @property
    def key(self) -> tuple[str, str]:
        return (self.node, self.device_id)

    @property
    def usable(self) -> bool:
        return self.state == USABLE_DEVICE and bool(self.lvstore)

    @classmethod
    def of(cls, r: Mapping[str, Any]) -> Device:
        lvs = r.get("lvstore") or {}
        return cls(
            r["node"],
            r["device_id"],
            r["bdev"],
            r["size_bytes"],
            r["block_size"],
            r["state"],
            r["generation"],
            r.get("uuid", ""),
            lvs.get("name", ""),
            lvs.get("uuid", ""),
            lvs.get("cluster_size", 0),
            lvs.get("free_bytes", 0),
            _extra(r, cls.FIELDS),
        )

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(kind="device", schema_version=SCHEMA_VERSION, node=self.node, device_id=self.device_id)
        out.update(bdev=self.bdev, size_bytes=self.size_bytes, block_size=self.block_size)
        out.update(state=self.state, generation=self.generation)
        if self.uuid:
            out["uuid"] = self.uuid
        if self.lvstore:
            lvs: dict[str, Any] = {"name": self.lvstore, "uuid": self.lvstore_uuid}
            if self.cluster_size:
                lvs["cluster_size"] = self.cluster_size
            lvs["free_bytes"] = self.free_bytes
            out["lvstore"] = lvs
        return out


@dataclass(frozen=True)
class Leg:
    """One lvol holding a copy of the volume's data, on one device of one node.

    ``incarnation`` names the export of the leg to a remote owner; ``node_boot`` is the boot of the
    leg's node that incarnation belongs to: after a restart the node does not export it again."""

    leg_id: str
    node: str
    device: str
    lvstore: str
    state: str = "new"
    incarnation: int = 1
    node_boot: str = ""
    identity: str = ""
    lvol_uuid: str = ""

    @classmethod
    def of(cls, r: Mapping[str, Any]) -> Leg:
        return cls(
            r["leg_id"],
            r["node"],
            r["device"],
            r["lvstore"],
            r["state"],
            r["incarnation"],
            r.get("node_boot", ""),
            r.get("identity", ""),
            r.get("lvol_uuid", ""),
        )

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "leg_id": self.leg_id,
            "node": self.node,
            "device": self.device,
            "lvstore": self.lvstore,
            "state": self.state,
            "incarnation": self.incarnation,
        }
        for name in ("node_boot", "identity", "lvol_uuid"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out

    @property
    def holds_data(self) -> bool:
        return self.state == "in_sync"


@dataclass(frozen=True)
class Volume:
    """A virtual volume: a raid on ``owner`` over ``legs`` (raid1 for 2-3 copies, concat for one).
    ``detached``: in-sync copies that left the mapping while out of reach, kept (never destroyed)
    until the volume has its redundancy back; they miss every write since they left."""

    name: str
    uuid: str
    size_bytes: int
    redundancy: int
    owner: str
    legs: tuple[Leg, ...]
    generation: int = 1
    epoch: int = 0
    state: str = "creating"
    thin: bool = True
    leg_serial: int = 0
    detached: tuple[Leg, ...] = ()
    extra: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    FIELDS = (
        "kind", "schema_version", "name", "uuid", "size_bytes", "redundancy", "raid_level", "owner_node", "legs",
        "generation", "epoch", "state", "thin", "leg_serial", "detached",
    )  # fmt: skip

    @property
    def raid_level(self) -> str:
        return "raid1" if self.redundancy > 1 else "concat"

    @property
    def size_mib(self) -> int:
        return -(-self.size_bytes // (1 << 20))

    @classmethod
    def of(cls, r: Mapping[str, Any]) -> Volume:
        return cls(
            r["name"],
            r["uuid"],
            r["size_bytes"],
            r["redundancy"],
            r["owner_node"],
            tuple(Leg.of(x) for x in r["legs"]),
            r["generation"],
            r.get("epoch", 0),
            r["state"],
            r.get("thin", True),
            r.get("leg_serial", 0),
            tuple(Leg.of(x) for x in r.get("detached", ())),
            _extra(r, cls.FIELDS),
        )

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(kind="volume", schema_version=SCHEMA_VERSION, name=self.name, uuid=self.uuid)
        out.update(size_bytes=self.size_bytes, redundancy=self.redundancy, raid_level=self.raid_level)
        out.update(owner_node=self.owner, legs=[leg.record() for leg in self.legs], generation=self.generation)
        out.update(epoch=self.epoch, state=self.state, thin=self.thin, leg_serial=self.leg_serial)
        if self.detached:
            out["detached"] = [leg.record() for leg in self.detached]
        return out

    def leg(self, leg_id: str) -> Leg | None:
        return next((x for x in self.legs if x.leg_id == leg_id), None)

    def nodes(self) -> set[str]:
        """Every node this volume lives on: its owner and the nodes of its legs."""
        return {self.owner, *(x.node for x in self.legs)}

    def with_legs(self, legs: tuple[Leg, ...], **changes: Any) -> Volume:
        return replace(self, legs=legs, **changes)


@dataclass(frozen=True)
class Export:
    """How hosts reach a volume: an NVMe-oF subsystem (or iSCSI target) on the volume's owner."""

    volume: str
    export_id: str
    protocol: str
    subnqn: str = ""
    hosts: tuple[str, ...] = ()
    allow_any_host: bool = False
    record_: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, r: Mapping[str, Any]) -> Export:
        nv = r.get("nvmf") or {}
        return cls(
            r["volume"],
            r["export_id"],
            r["protocol"],
            nv.get("subnqn", ""),
            tuple(nv.get("hosts", ())),
            nv.get("allow_any_host", False),
            r,
        )

    @property
    def iscsi(self) -> Mapping[str, Any]:
        return self.record_.get("iscsi") or {}

    @property
    def dhchap(self) -> Mapping[str, str]:
        """DH-HMAC-CHAP key names for the hosts of an NVMe-oF export (empty: none)."""
        return (self.record_.get("nvmf") or {}).get("dhchap") or {}


@dataclass(frozen=True)
class Epoch:
    """One round of quiescence: hold the affected volumes, remap them, resume."""

    number: int
    reason: str
    volumes: frozenset[str]
    nodes: frozenset[str]
    token: int
    phase: str
    acks: Mapping[str, str] = field(default_factory=dict)
    detail: str = ""

    @classmethod
    def of(cls, r: Mapping[str, Any]) -> Epoch:
        return cls(
            r["number"],
            r["reason"],
            frozenset(r["affected_volumes"]),
            frozenset(r["affected_nodes"]),
            r["leader_token"],
            r["phase"],
            dict(r.get("acks", {})),
            r.get("detail", ""),
        )

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "epoch",
            "schema_version": SCHEMA_VERSION,
            "number": self.number,
            "reason": self.reason,
            "affected_volumes": sorted(self.volumes),
            "affected_nodes": sorted(self.nodes),
            "leader_token": self.token,
            "phase": self.phase,
            "acks": dict(sorted(self.acks.items())),
        }
        if self.detail:
            out["detail"] = self.detail
        return out

    @property
    def holds(self) -> bool:
        """Whether host I/O to the affected volumes is held in this phase."""
        return self.phase in HELD_PHASES


#: phases in which the affected volumes are held: I/O waits, long work is halted
HELD_PHASES = frozenset({"quiescing", "quiesced", "remapping"})
