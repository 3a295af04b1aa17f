"""What a node's SPDK holds, read from its get-RPCs into plain values (parsing only, no I/O).

The agent fetches the results of :data:`QUERIES` in one pipelined batch and hands them to
:func:`observe`; the planner compares the result with what the database wants.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

#: the read RPCs (method, params) one observation is made of, sent together
QUERIES: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("bdev_get_bdevs", None),
    ("bdev_raid_get_bdevs", {"category": "all"}),
    ("bdev_lvol_get_lvstores", None),
    ("bdev_nvme_get_controllers", None),
    ("nvmf_get_subsystems", None),
    ("iscsi_get_target_nodes", None),
    ("iscsi_get_portal_groups", None),
    ("iscsi_get_initiator_groups", None),
    ("iscsi_get_auth_groups", None),
)


@dataclass(frozen=True)
class BdevInfo:
    name: str
    uuid: str
    aliases: tuple[str, ...]
    num_blocks: int
    block_size: int
    claimed: bool
    product: str


@dataclass(frozen=True)
class Member:
    slot: int
    name: str | None
    uuid: str
    configured: bool


@dataclass(frozen=True)
class RaidInfo:
    name: str
    state: str
    level: str
    members: tuple[Member, ...]
    rebuild_target: str | None = None
    rebuild_percent: int = 0

    def configured(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members if m.configured and m.name)


@dataclass(frozen=True)
class LvstoreInfo:
    name: str
    uuid: str
    base_bdev: str
    cluster_size: int
    free_clusters: int
    total_clusters: int


@dataclass(frozen=True)
class ControllerInfo:
    name: str
    state: str
    subnqn: str
    traddr: str
    trsvcid: str


@dataclass(frozen=True)
class NamespaceInfo:
    nsid: int
    bdev: str
    uuid: str


@dataclass(frozen=True)
class SubsystemInfo:
    nqn: str
    namespaces: tuple[NamespaceInfo, ...]
    listeners: tuple[tuple[str, str], ...]
    hosts: tuple[str, ...]
    allow_any_host: bool


@dataclass(frozen=True)
class IscsiInfo:
    """iSCSI objects: target nodes by name (their LUN bdevs and initiator group tags), and the tags
    of portal, initiator and auth groups (with what each holds)."""

    targets: Mapping[str, tuple[tuple[str, ...], tuple[int, ...]]] = field(default_factory=dict)
    portal_groups: Mapping[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    initiator_groups: Mapping[int, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    auth_groups: Mapping[int, tuple[tuple[str, str, str, str], ...]] = field(default_factory=dict)


def _iscsi(results: Mapping[str, Any]) -> IscsiInfo:
    return IscsiInfo(
        {t["name"]: (tuple(x["bdev_name"] for x in t.get("luns", ())),
                     tuple(m["ig_tag"] for m in t.get("pg_ig_maps", ())))
         for t in results.get("iscsi_get_target_nodes") or ()},
        {g["tag"]: tuple((p["host"], str(p["port"])) for p in g.get("portals", ()))
         for g in results.get("iscsi_get_portal_groups") or ()},
        {g["tag"]: (tuple(g.get("initiators", ())), tuple(g.get("netmasks", ())))
         for g in results.get("iscsi_get_initiator_groups") or ()},
        {g["tag"]: tuple((x.get("user", ""), x.get("secret", ""), x.get("muser", ""), x.get("msecret", ""))
                         for x in g.get("secrets", ()))
         for g in results.get("iscsi_get_auth_groups") or ()},
    )  # fmt: skip


@dataclass(frozen=True)
class Observed:
    """One node's SPDK objects. ``held`` lists the volumes whose I/O the agent holds (SPDK does
    not report error injections, so the agent remembers them; None: not known since a restart)."""

    bdevs: Mapping[str, BdevInfo] = field(default_factory=dict)
    raids: Mapping[str, RaidInfo] = field(default_factory=dict)
    lvstores: Mapping[str, LvstoreInfo] = field(default_factory=dict)
    controllers: Mapping[str, ControllerInfo] = field(default_factory=dict)
    subsystems: Mapping[str, SubsystemInfo] = field(default_factory=dict)
    held: frozenset[str] | None = None
    iscsi: IscsiInfo = field(default_factory=IscsiInfo)

    @functools.cached_property
    def by_alias(self) -> dict[str, BdevInfo]:
        """Every bdev under each of its aliases (built once per observation)."""
        return {a: b for b in self.bdevs.values() for a in b.aliases}

    @functools.cached_property
    def exported(self) -> frozenset[str]:
        """Bdevs that hosts reach: namespaces of NVMe-oF subsystems and LUNs of iSCSI targets."""
        nvmf = {n.bdev for s in self.subsystems.values() for n in s.namespaces}
        return frozenset(nvmf | {lun for luns, _ in self.iscsi.targets.values() for lun in luns})

    def find(self, name: str) -> BdevInfo | None:
        """A bdev by name or alias, as SPDK resolves them."""
        return self.bdevs.get(name) or self.by_alias.get(name)

    def lvols(self, lvstore: str) -> dict[str, BdevInfo]:
        """The lvols of an lvstore by lvol name."""
        out: dict[str, BdevInfo] = {}
        for b in self.bdevs.values():
            for alias in b.aliases:
                lvs, sep, lvol = alias.partition("/")
                if sep and lvs == lvstore:
                    out[lvol] = b
        return out


def _bdev(b: Mapping[str, Any]) -> BdevInfo:
    return BdevInfo(
        b["name"],
        b.get("uuid", ""),
        tuple(b.get("aliases", ())),
        b.get("num_blocks", 0),
        b.get("block_size", 0),
        bool(b.get("claimed", False)),
        b.get("product_name", ""),
    )


def _raid(r: Mapping[str, Any]) -> RaidInfo:
    members = tuple(
        Member(i, m.get("name"), m.get("uuid", ""), bool(m.get("is_configured")))
        for i, m in enumerate(r.get("base_bdevs_list", ()))
    )
    process = r.get("process") or {}
    return RaidInfo(
        r["name"],
        r["state"],
        r.get("raid_level", ""),
        members,
        process.get("target"),
        int((process.get("progress") or {}).get("percent", 0)),
    )


def _lvstore(s: Mapping[str, Any]) -> LvstoreInfo:
    return LvstoreInfo(
        s["name"],
        s["uuid"],
        s.get("base_bdev", ""),
        s.get("cluster_size", 0),
        s.get("free_clusters", 0),
        s.get("total_data_clusters", 0),
    )


def _controller(c: Mapping[str, Any]) -> ControllerInfo:
    ctrlrs = c.get("ctrlrs") or [{}]
    trid = ctrlrs[0].get("trid", {})
    return ControllerInfo(
        c["name"], ctrlrs[0].get("state", ""), trid.get("subnqn", ""), trid.get("traddr", ""), trid.get("trsvcid", "")
    )


def _subsystem(s: Mapping[str, Any]) -> SubsystemInfo:
    return SubsystemInfo(
        s["nqn"],
        tuple(NamespaceInfo(n["nsid"], n.get("bdev_name", ""), n.get("uuid", "")) for n in s.get("namespaces", ())),
        tuple((x.get("traddr", ""), x.get("trsvcid", "")) for x in s.get("listen_addresses", ())),
        tuple(h["nqn"] for h in s.get("hosts", ())),
        bool(s.get("allow_any_host", False)),
    )


def _canonical(raid: RaidInfo, by_uuid: Mapping[str, str], by_alias: Mapping[str, str]) -> RaidInfo:
    """Raid members under the names of their bdevs (SPDK lists a member under the name it was
    added with, which may be an alias such as ``lvstore/lvol``)."""

    def name(member_name: str | None, uuid: str) -> str | None:
        if uuid in by_uuid:
            return by_uuid[uuid]
        if member_name is None:
            return None
        return by_alias.get(member_name, member_name)

    members = tuple(replace(m, name=name(m.name, m.uuid)) if m.configured else m for m in raid.members)
    target = raid.rebuild_target
    if target is not None:
        given = next((i for i, m in enumerate(raid.members) if m.name == target), None)
        target = members[given].name if given is not None else by_alias.get(target, target)
    return replace(raid, members=members, rebuild_target=target)


def observe(results: Mapping[str, Any], held: frozenset[str] | None = None) -> Observed:
    """Build an :class:`Observed` from the results of :data:`QUERIES`, keyed by method."""
    bdevs = {b["name"]: _bdev(b) for b in results.get("bdev_get_bdevs") or ()}
    by_uuid = {b.uuid: b.name for b in bdevs.values() if b.uuid}
    by_alias = {a: b.name for b in bdevs.values() for a in b.aliases}
    return Observed(
        bdevs,
        {r["name"]: _canonical(_raid(r), by_uuid, by_alias) for r in results.get("bdev_raid_get_bdevs") or ()},
        {s["name"]: _lvstore(s) for s in results.get("bdev_lvol_get_lvstores") or ()},
        {c["name"]: _controller(c) for c in results.get("bdev_nvme_get_controllers") or ()},
        {s["nqn"]: _subsystem(s) for s in results.get("nvmf_get_subsystems") or ()},
        held,
        _iscsi(results),
    )
