"""Terse builders for the model tests: nodes, devices, volumes, exports and node views, and a small
in-memory SPDK target that holds objects in the shapes a real ``spdk_tgt`` reports them (see
``tests/data/spdk-reference``) and applies plan steps to them.

With the target a test can plan, apply, observe and plan again until a node converges, which is
how the idempotence of the planner is checked.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from spdkvirt.model import names
from spdkvirt.model.observed import Observed, observe
from spdkvirt.model.plan import NodeView, plan_node
from spdkvirt.model.records import Device, Export, Leg, Node, Volume
from spdkvirt.model.remap import ClusterView
from spdkvirt.model.steps import EXISTS, GONE, Plan, Step

GIB = 1 << 30
MIB = 1 << 20
BLOCK = 512
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery"


def fixed_uuid(*parts: str) -> str:
    """A fixed uuid for a name, so scenarios read the same on every run."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, "spdkvirt-test/" + "/".join(parts)))


def boot_of(node_id: str, n: int = 1) -> str:
    return f"{node_id}-boot{n}"


def address_of(node_id: str) -> str:
    digits = re.sub(r"\D", "", node_id) or "1"
    return f"127.0.0.{int(digits) % 250 or 250}"


def node(node_id: str, *, state: str = "up", boot: int = 1, address: str = "", port: int = 4420) -> Node:
    return Node(node_id, address or address_of(node_id), state, 1, boot_of(node_id, boot), port)


def device(
    node_id: str,
    device_id: str = "d1",
    *,
    size: int = 100 * GIB,
    free: int = 0,
    state: str = "available",
    lvstore: bool = True,
) -> Device:
    lvs = names.lvstore(device_id) if lvstore else ""
    uuid = fixed_uuid(node_id, device_id) if lvstore else ""
    return Device(
        node_id,
        device_id,
        f"aio-{device_id}",
        size,
        BLOCK,
        state,
        1,
        fixed_uuid("dev", node_id, device_id),
        lvs,
        uuid,
        MIB if lvstore else 0,
        free,
    )


def leg(
    node_id: str,
    device_id: str = "d1",
    state: str = "in_sync",
    *,
    inc: int = 1,
    boot: int = 1,
    serial: int = 0,
    identity: str = "",
) -> Leg:
    """A leg whose id :func:`volume` fills in from its serial (its position when 0)."""
    return Leg(str(serial), node_id, device_id, names.lvstore(device_id), state, inc, boot_of(node_id, boot), identity)


def leg_id(volume_uuid: str, serial: int) -> str:
    return f"{volume_uuid.replace('-', '')[:12]}.{serial}"


def volume(
    name: str = "v1",
    legs: Iterable[Leg] = (),
    *,
    owner: str = "n1",
    redundancy: int = 0,
    state: str = "",
    size: int = GIB,
    thin: bool = True,
    generation: int = 1,
) -> Volume:
    """A volume; its state defaults to creating when every leg is new, online otherwise."""
    uuid = fixed_uuid("volume", name)
    built = []
    for i, x in enumerate(legs, start=1):
        serial = int(x.leg_id) or i
        built.append(replace(x, leg_id=leg_id(uuid, serial)))
    if not state:
        state = "creating" if all(x.state == "new" for x in built) else "online"
    serial = max((int(x.leg_id.rpartition(".")[2]) for x in built), default=0)
    return Volume(
        name, uuid, size, redundancy or len(built) or 1, owner, tuple(built), generation, 0, state, thin, serial
    )


def export(
    v: Volume,
    export_id: str = "e1",
    *,
    hosts: Iterable[str] = ("nqn.2014-08.org.nvmexpress:uuid:" + fixed_uuid("host", "h1"),),
    allow_any_host: bool = False,
    subnqn: str = "",
) -> Export:
    """An NVMe-oF export record of a volume on its owner."""
    owner = node(v.owner)
    record = {
        "kind": "export",
        "schema_version": 1,
        "volume": v.name,
        "export_id": export_id,
        "protocol": "nvmf",
        "node": v.owner,
        "state": "active",
        "generation": 1,
        "nvmf": {
            "subnqn": subnqn or names.volume_nqn(v.name),
            "nsid": 1,
            "listeners": [{"trtype": "TCP", "adrfam": "IPv4", "traddr": owner.address, "trsvcid": "4420"}],
            "allow_any_host": allow_any_host,
            "hosts": list(hosts),
        },
    }
    return Export.of(record)


def view(
    me: str,
    volumes: Iterable[Volume],
    *,
    nodes: Iterable[Node] = (),
    exports: Iterable[Export] = (),
    held: Iterable[str] = (),
    complete: bool = True,
) -> NodeView:
    """What the database wants of node ``me``; nodes not given are up on their first boot."""
    vols = {v.name: v for v in volumes}
    known = {n.node_id: n for n in nodes}
    for n in sorted(set().union({me}, *(v.nodes() for v in vols.values()))):
        known.setdefault(n, node(n))
    by_volume: dict[str, tuple[Export, ...]] = {}
    for e in exports:
        by_volume[e.volume] = (*by_volume.get(e.volume, ()), e)
    return NodeView(known[me], known, vols, by_volume, frozenset(held), complete)


def cluster(nodes: Iterable[Node], devices: Iterable[Device], *, dead: Iterable[str] = ()) -> ClusterView:
    """Nodes (alive unless listed in ``dead``) and their devices."""
    by_id = {n.node_id: n for n in nodes}
    return ClusterView(by_id, frozenset(by_id) - set(dead), {d.key: d for d in devices})


# ---- views as JSON, for the golden files ------------------------------------------------------
def view_json(v: NodeView) -> dict[str, Any]:
    return {
        "node": v.node.node_id,
        "nodes": [n.record() for n in v.nodes.values()],
        "volumes": [x.record() for x in v.volumes.values()],
        "exports": [dict(e.record_) for es in v.exports.values() for e in es],
        "held": sorted(v.held),
        "complete": v.complete,
    }


def view_of_json(d: Mapping[str, Any]) -> NodeView:
    nodes = [Node.of(r) for r in d["nodes"]]
    if d["node"] not in {n.node_id for n in nodes}:
        raise KeyError(f"node {d['node']} is not among the view's nodes")
    return view(
        d["node"],
        [Volume.of(r) for r in d["volumes"]],
        nodes=nodes,
        exports=[Export.of(r) for r in d.get("exports", ())],
        held=d.get("held", ()),
        complete=d.get("complete", True),
    )


# ---- an SPDK target in memory -------------------------------------------------------------------
class StepFailed(Exception):
    """A step the target refused, as SPDK would answer it with an error; ``kind`` is
    :data:`~spdkvirt.model.steps.EXISTS` or :data:`~spdkvirt.model.steps.GONE` when the error means
    "already so"."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Namespace:
    nsid: int
    bdev: str
    uuid: str


@dataclass
class Subsystem:
    nqn: str
    allow_any_host: bool = False
    serial: str = "00000000000000000000"
    listeners: list[tuple[str, str]] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)


@dataclass
class Raid:
    name: str
    level: str
    members: list[str | None]
    uuid: str
    target: str | None = None
    percent: int = 0
    state: str = "online"


@dataclass
class Bdev:
    name: str
    uuid: str
    product: str
    num_blocks: int
    aliases: list[str] = field(default_factory=list)
    driver: dict[str, Any] = field(default_factory=dict)
    base: str = ""  # error bdevs: the bdev below


@dataclass
class Controller:
    name: str
    subnqn: str
    traddr: str
    trsvcid: str
    hostnqn: str
    state: str = "enabled"


@dataclass(frozen=True)
class Remote:
    """What a subsystem on another target offers: its namespace and who may connect."""

    traddr: str
    trsvcid: str
    uuid: str
    num_blocks: int
    hosts: frozenset[str]
    allow_any_host: bool


class Target:
    """One node's SPDK, as far as the planner sees it: bdevs, raids, lvstores, controllers,
    subsystems, and the volumes whose I/O the agent holds."""

    def __init__(self, me: Node, *, held: Iterable[str] | None = ()) -> None:
        self.node = me
        self.bdevs: dict[str, Bdev] = {}
        self.raids: dict[str, Raid] = {}
        self.lvstores: dict[str, tuple[str, str]] = {}  # name -> (uuid, base bdev)
        self.controllers: dict[str, Controller] = {}
        self.subsystems: dict[str, Subsystem] = {}
        self.pending_errors: set[str] = set()
        self.held: set[str] | None = None if held is None else set(held)

    # -- building -------------------------------------------------------------------------------
    def lvstore(self, device_id: str = "d1", *, name: str = "") -> Target:
        name = name or names.lvstore(device_id)
        base = f"aio-{device_id}"
        self.bdevs[base] = Bdev(base, fixed_uuid(self.node.node_id, base), "AIO disk", 100 * GIB // BLOCK)
        self.lvstores[name] = (fixed_uuid(self.node.node_id, name), base)
        return self

    def lvol(self, lvstore: str, lvol: str, *, size: int = GIB, thin: bool = True) -> str:
        """An lvol; returns its bdev name (its uuid)."""
        if lvstore not in self.lvstores:
            raise StepFailed(f"lvstore {lvstore} does not exist")
        alias = names.lvol_alias(lvstore, lvol)
        if self.find(alias) is not None:
            raise StepFailed(f"lvol {alias} exists", EXISTS)
        uuid = fixed_uuid(self.node.node_id, alias)
        driver = {
            "lvol": {
                "lvol_store_uuid": self.lvstores[lvstore][0],
                "base_bdev": self.lvstores[lvstore][1],
                "thin_provision": thin,
                "snapshot": False,
                "clone": False,
            }
        }
        self.bdevs[uuid] = Bdev(uuid, uuid, "Logical Volume", size // BLOCK, [alias], driver)
        return uuid

    def leg_lvol(self, v: Volume, x: Leg) -> str:
        if x.lvstore not in self.lvstores:
            self.lvstore(x.device, name=x.lvstore)
        return self.lvol(x.lvstore, x.leg_id, size=v.size_mib * MIB, thin=v.thin)

    def null(self, name: str, num_blocks: int) -> None:
        self.bdevs[name] = Bdev(name, fixed_uuid(self.node.node_id, name), "Null disk", num_blocks)

    def error(self, base: str) -> None:
        name = names.HOLD_PREFIX + base
        below = self.find(base)
        blocks = below.num_blocks if below is not None else 0
        self.bdevs[name] = Bdev(
            name,
            fixed_uuid(self.node.node_id, name),
            "Error Injection Disk",
            blocks,
            driver={"error_disk": {"base_bdev": base}},
            base=base,
        )

    def raid(
        self,
        name: str,
        members: Iterable[str | None],
        *,
        level: str = "raid1",
        target: str | None = None,
        percent: int = 0,
        state: str = "online",
    ) -> None:
        self.raids[name] = Raid(name, level, list(members), fixed_uuid(self.node.node_id, name), target, percent, state)

    def controller(
        self,
        name: str,
        subnqn: str,
        traddr: str,
        trsvcid: str = "4420",
        *,
        uuid: str = "",
        num_blocks: int = GIB // BLOCK,
        hostnqn: str = "",
    ) -> None:
        """A bdev_nvme controller and (with ``uuid``) the bdev of its namespace 1."""
        self.controllers[name] = Controller(name, subnqn, traddr, trsvcid, hostnqn or names.node_nqn(self.node.node_id))
        if uuid:
            trid = {"trtype": "TCP", "adrfam": "IPv4", "traddr": traddr, "trsvcid": trsvcid, "subnqn": subnqn}
            self.bdevs[name + "n1"] = Bdev(
                name + "n1",
                uuid,
                "NVMe disk",
                num_blocks,
                [uuid],
                {"nvme": [{"trid": trid, "ns_data": {"id": 1, "can_share": True}}]},
            )

    def subsystem(
        self,
        nqn: str,
        *,
        bdev: str = "",
        uuid: str = "",
        hosts: Iterable[str] = (),
        allow_any_host: bool = False,
        listen: bool = True,
    ) -> Subsystem:
        sub = Subsystem(nqn, allow_any_host, hosts=list(hosts))
        if listen:
            sub.listeners.append((self.node.address, str(self.node.nvmf_port)))
        if bdev:
            found = self.find(bdev)
            sub.namespaces.append(Namespace(1, found.name if found else bdev, uuid or fixed_uuid(nqn)))
        self.subsystems[nqn] = sub
        return sub

    def find(self, name: str) -> Bdev | None:
        found = self.bdevs.get(name)
        if found is not None:
            return found
        return next((b for b in self.bdevs.values() if name in b.aliases or name == b.uuid), None)

    def finish_rebuilds(self) -> None:
        for r in self.raids.values():
            r.target, r.percent = None, 0

    def drop_member(self, name: str) -> None:
        """SPDK takes a member out of its raid (an I/O error, a lost path), leaving its slot empty."""
        for r in self.raids.values():
            r.members = [None if m == name else m for m in r.members]

    # -- what SPDK reports ----------------------------------------------------------------------
    def results(self) -> dict[str, Any]:
        """The results of :data:`spdkvirt.model.observed.QUERIES`, keyed by method."""
        bdevs = [self._bdev_json(b) for b in self.bdevs.values()]
        bdevs += [self._raid_bdev_json(r) for r in self.raids.values()]
        return {
            "bdev_get_bdevs": bdevs,
            "bdev_raid_get_bdevs": [self._raid_json(r) for r in self.raids.values()],
            "bdev_lvol_get_lvstores": [self._lvstore_json(n) for n in self.lvstores],
            "bdev_nvme_get_controllers": [self._ctrl_json(c) for c in self.controllers.values()],
            "nvmf_get_subsystems": [_discovery(), *(self._sub_json(s) for s in self.subsystems.values())],
        }

    def observed(self) -> Observed:
        return observe(self.results(), None if self.held is None else frozenset(self.held))

    def remote(self) -> dict[str, Remote]:
        """The subsystems of this target by NQN, as another target attaching to them sees them."""
        out = {}
        for s in self.subsystems.values():
            if s.namespaces and s.listeners:
                b = self.find(s.namespaces[0].bdev)
                blocks = b.num_blocks if b is not None else 0
                traddr, trsvcid = s.listeners[0]
                out[s.nqn] = Remote(traddr, trsvcid, s.namespaces[0].uuid, blocks, frozenset(s.hosts), s.allow_any_host)
        return out

    def claimed(self, name: str) -> bool:
        if any(name in r.members for r in self.raids.values()):
            return True
        if any(b.base == name for b in self.bdevs.values()):
            return True
        return any(n.bdev == name for s in self.subsystems.values() for n in s.namespaces)

    def _bdev_json(self, b: Bdev) -> dict[str, Any]:
        return {
            "name": b.name,
            "aliases": list(b.aliases) or [b.uuid],
            "product_name": b.product,
            "block_size": BLOCK,
            "num_blocks": b.num_blocks,
            "uuid": b.uuid,
            "claimed": self.claimed(b.name),
            "zoned": False,
            "driver_specific": dict(b.driver),
        }

    def _raid_json(self, r: Raid) -> dict[str, Any]:
        blocks = self._raid_blocks(r)
        members = []
        for m in r.members:
            if m is None:
                members.append(
                    {"name": None, "uuid": ZERO_UUID, "is_configured": False, "data_offset": 0, "data_size": blocks}
                )
            else:
                b = self.find(m)
                members.append(
                    {
                        "name": m,
                        "uuid": b.uuid if b else ZERO_UUID,
                        "is_configured": True,
                        "data_offset": 0,
                        "data_size": blocks,
                    }
                )
        out: dict[str, Any] = {
            "name": r.name,
            "uuid": r.uuid,
            "strip_size_kb": 64 if r.level == "concat" else 0,
            "state": r.state,
            "raid_level": r.level,
            "superblock": False,
            "num_base_bdevs": len(r.members),
            "num_base_bdevs_discovered": sum(m is not None for m in r.members),
            "num_base_bdevs_operational": sum(m is not None for m in r.members),
        }
        if r.target is not None:
            out["process"] = {"type": "rebuild", "target": r.target, "progress": {"blocks": 0, "percent": r.percent}}
        out["base_bdevs_list"] = members
        return out

    def _raid_blocks(self, r: Raid) -> int:
        sizes = [b.num_blocks for m in r.members if m is not None and (b := self.find(m)) is not None]
        return min(sizes, default=0)

    def _raid_bdev_json(self, r: Raid) -> dict[str, Any]:
        b = Bdev(r.name, r.uuid, "Raid Volume", self._raid_blocks(r), driver={"raid": self._raid_json(r)})
        return self._bdev_json(b)

    def _lvstore_json(self, name: str) -> dict[str, Any]:
        uuid, base = self.lvstores[name]
        return {
            "uuid": uuid,
            "name": name,
            "base_bdev": base,
            "total_data_clusters": 102_400,
            "free_clusters": 102_400,
            "block_size": BLOCK,
            "cluster_size": MIB,
        }

    def _ctrl_json(self, c: Controller) -> dict[str, Any]:
        trid = {"trtype": "TCP", "adrfam": "IPv4", "traddr": c.traddr, "trsvcid": c.trsvcid, "subnqn": c.subnqn}
        host = {"nqn": c.hostnqn, "addr": "", "svcid": "", "no_shn_notification": False}
        return {"name": c.name, "ctrlrs": [{"state": c.state, "trid": trid, "cntlid": 1, "host": host}]}

    def _sub_json(self, s: Subsystem) -> dict[str, Any]:
        return {
            "nqn": s.nqn,
            "subtype": "NVMe",
            "listen_addresses": [
                {"trtype": "TCP", "adrfam": "IPv4", "traddr": a, "trsvcid": p} for a, p in s.listeners
            ],
            "allow_any_host": s.allow_any_host,
            "hosts": [{"nqn": h} for h in s.hosts],
            "serial_number": s.serial,
            "model_number": "SPDK bdev Controller",
            "max_namespaces": 32,
            "namespaces": [
                {
                    "nsid": n.nsid,
                    "bdev_name": n.bdev,
                    "name": n.bdev,
                    "nguid": uuidlib.UUID(n.uuid).hex.upper(),
                    "uuid": n.uuid,
                }
                for n in s.namespaces
            ],
        }

    # -- applying steps -------------------------------------------------------------------------
    def apply(self, plan: Plan, fabric: Mapping[str, Remote] | None = None) -> list[tuple[Step, str]]:
        """Run a plan stage by stage; returns the steps that failed (and why), like an executor
        that counts "already so" answers as success. ``fabric``: what other targets export."""
        failed = []
        for _, steps in plan.stages():
            for s in steps:
                try:
                    self.step(s, fabric or {})
                except StepFailed as e:
                    if e.kind not in s.done_if:
                        failed.append((s, str(e)))
        return failed

    def step(self, s: Step, fabric: Mapping[str, Remote]) -> None:
        p = s.params
        handler = getattr(self, "_" + s.method, None)
        if handler is None:
            raise AssertionError(f"the test target does not know {s.method}")
        handler(p, fabric)

    def _need(self, name: str) -> Bdev:
        b = self.find(name)
        if b is None:
            raise StepFailed(f"bdev {name} not found", GONE)
        return b

    def unplug(self, name: str) -> None:
        """A bdev goes away: raids lose it, error bdevs over it and namespaces of it go too."""
        self.bdevs.pop(name, None)
        for r in self.raids.values():
            r.members = [None if m == name else m for m in r.members]
            if r.target == name:
                r.target = None
        for b in [b for b in self.bdevs.values() if b.base == name]:
            self.unplug(b.name)
        for sub in self.subsystems.values():
            sub.namespaces = [n for n in sub.namespaces if n.bdev != name]

    def _bdev_lvol_create(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        self.lvol(p["lvs_name"], p["lvol_name"], size=p["size_in_mib"] * MIB, thin=p["thin_provision"])

    def _bdev_lvol_delete(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        self.unplug(self._need(p["name"]).name)

    def _bdev_null_create(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        if p["name"] in self.bdevs:
            raise StepFailed("exists", EXISTS)
        self.null(p["name"], p["num_blocks"])

    def _bdev_null_delete(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        self.unplug(self._need(p["name"]).name)

    def _bdev_error_create(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        name = names.HOLD_PREFIX + p["base_name"]
        if name in self.bdevs:
            raise StepFailed("exists", EXISTS)
        if self.find(p["base_name"]) is None:
            self.pending_errors.add(p["base_name"])  # SPDK makes it when its base appears
        else:
            self.error(p["base_name"])

    def _bdev_error_delete(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        self.unplug(self._need(p["name"]).name)

    def _bdev_error_inject_error(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        vol = names.volume_of_hold(self._need(p["name"]).name)
        assert vol is not None
        self.held = (self.held or set()) | {vol}

    def _bdev_error_resume_pending(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        vol = names.volume_of_hold(self._need(p["name"]).name)
        assert vol is not None
        self.held = (self.held or set()) - {vol}

    def _bdev_raid_create(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        if p["name"] in self.raids:
            raise StepFailed("exists", EXISTS)
        members = [self._need(m).name for m in p["base_bdevs"]]
        for m in members:
            if self.claimed(m):
                raise StepFailed(f"{m} is claimed")
        self.raid(p["name"], members, level=p["raid_level"])
        if p["name"] in self.pending_errors:
            self.pending_errors.discard(p["name"])
            self.error(p["name"])

    def _bdev_raid_delete(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        if self.raids.pop(p["name"], None) is None:
            raise StepFailed("raid not found", GONE)
        self.unplug(p["name"])

    def _bdev_raid_remove_base_bdev(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        r = next((r for r in self.raids.values() if p["name"] in r.members), None)
        if r is None:
            raise StepFailed("Failed to remove base bdev from raid bdev", GONE)
        r.members = [None if m == p["name"] else m for m in r.members]
        if r.target == p["name"]:
            r.target = None

    def _bdev_raid_add_base_bdev(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        r = self.raids.get(p["raid_bdev"])
        if r is None:
            raise StepFailed("raid not found", GONE)
        name = self._need(p["base_bdev"]).name
        if r.target is not None or name in r.members or self.claimed(name):
            raise StepFailed("Operation not permitted")
        if None not in r.members:
            raise StepFailed("no empty slot")
        r.members[r.members.index(None)] = name
        r.target = name

    def _bdev_nvme_attach_controller(self, p: Mapping[str, Any], fabric: Mapping[str, Remote]) -> None:
        if p["name"] in self.controllers:
            raise StepFailed("exists", EXISTS)
        remote = fabric.get(p["subnqn"])
        if remote is None or (remote.traddr, remote.trsvcid) != (p["traddr"], p["trsvcid"]):
            raise StepFailed(f"cannot connect to {p['subnqn']}")
        if not remote.allow_any_host and p["hostnqn"] not in remote.hosts:
            raise StepFailed(f"{p['hostnqn']} may not connect to {p['subnqn']}")
        self.controller(
            p["name"],
            p["subnqn"],
            p["traddr"],
            p["trsvcid"],
            uuid=remote.uuid,
            num_blocks=remote.num_blocks,
            hostnqn=p["hostnqn"],
        )

    def _bdev_nvme_detach_controller(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        if self.controllers.pop(p["name"], None) is None:
            raise StepFailed("No such device", GONE)
        self.unplug(p["name"] + "n1")

    def _sub(self, nqn: str) -> Subsystem:
        sub = self.subsystems.get(nqn)
        if sub is None:
            raise StepFailed(f"subsystem {nqn} not found")
        return sub

    def _nvmf_create_subsystem(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        if p["nqn"] in self.subsystems:
            raise StepFailed("exists", EXISTS)
        sub = self.subsystem(p["nqn"], allow_any_host=p["allow_any_host"], listen=False)
        sub.serial = p.get("serial_number", sub.serial)

    def _nvmf_delete_subsystem(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        if self.subsystems.pop(p["nqn"], None) is None:
            raise StepFailed("not found", GONE)

    def _nvmf_subsystem_add_listener(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        sub = self._sub(p["nqn"])
        la = p["listen_address"]
        if (la["traddr"], la["trsvcid"]) in sub.listeners:
            raise StepFailed("exists", EXISTS)
        sub.listeners.append((la["traddr"], la["trsvcid"]))

    def _nvmf_subsystem_add_host(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        sub = self._sub(p["nqn"])
        if p["host"] in sub.hosts:
            raise StepFailed("exists", EXISTS)
        sub.hosts.append(p["host"])

    def _nvmf_subsystem_remove_host(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        sub = self._sub(p["nqn"])
        if p["host"] not in sub.hosts:
            raise StepFailed("gone", GONE)
        sub.hosts.remove(p["host"])

    def _nvmf_subsystem_allow_any_host(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        self._sub(p["nqn"]).allow_any_host = p["allow_any_host"]

    def _nvmf_subsystem_add_ns(self, p: Mapping[str, Any], _: Mapping[str, Remote]) -> None:
        sub = self._sub(p["nqn"])
        ns = p["namespace"]
        if any(n.nsid == ns["nsid"] for n in sub.namespaces):
            raise StepFailed("Invalid parameters", EXISTS)
        sub.namespaces.append(Namespace(ns["nsid"], self._need(ns["bdev_name"]).name, ns["uuid"]))


def _discovery() -> dict[str, Any]:
    return {"nqn": DISCOVERY_NQN, "subtype": "Discovery", "listen_addresses": [], "allow_any_host": True, "hosts": []}


# ---- running several nodes until they converge --------------------------------------------------
def fabric(targets: Iterable[Target]) -> dict[str, Remote]:
    out: dict[str, Remote] = {}
    for t in targets:
        out.update(t.remote())
    return out


def converge(views: Mapping[str, NodeView], targets: Mapping[str, Target], rounds: int = 6) -> list[dict[str, Plan]]:
    """Plan and apply on every node until every plan is empty; the plans of each round.

    An attach may fail while the leg node has not exported its leg yet (it is planned again in the
    next round); any other failed step, or no convergence within ``rounds``, raises AssertionError."""
    history: list[dict[str, Plan]] = []
    for _ in range(rounds):
        plans = {n: plan_node(views[n], targets[n].observed()) for n in sorted(views)}
        history.append(plans)
        if not any(plans.values()):
            return history
        for n, p in plans.items():
            failed = targets[n].apply(p, fabric(t for m, t in targets.items() if m != n))
            bad = [(s.method, why) for s, why in failed if s.method != "bdev_nvme_attach_controller"]
            assert not bad, f"{n}: steps failed: {bad}"
    raise AssertionError(f"no convergence in {rounds} rounds; last plans: {history[-1]}")


def settle(v: Volume, *, exports: Iterable[Export] = (), nodes: Iterable[Node] = ()) -> dict[str, Target]:
    """The targets of every node of ``v`` after creating it from scratch and converging: its legs
    in the raid on its owner, exported to hosts."""
    fresh = replace(v, state="creating", legs=tuple(replace(x, state="new") for x in v.legs))
    given, wanted = list(nodes), list(exports)
    views = {n: view(n, [fresh], nodes=given, exports=wanted) for n in sorted(fresh.nodes())}
    targets = {n: Target(views[n].node) for n in views}
    for x in v.legs:
        if x.lvstore not in targets[x.node].lvstores:
            targets[x.node].lvstore(x.device)
    converge(views, targets)
    return targets


def staged(plan: Plan) -> list[tuple[str, str]]:
    """(stage, method) of every step, in the order the executor runs them."""
    return [(stage.name.lower(), s.method) for stage, steps in plan.stages() for s in steps]


def steps_of(plan: Plan, method: str) -> list[Step]:
    return [s for s in plan.steps if s.method == method]
