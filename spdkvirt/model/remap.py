"""The master's decisions, as pure functions: new volumes, and new mappings after a change.

``remap(volume, cluster, capacity)`` looks at one volume against the state of its nodes and
devices and returns its next mapping (or the same volume when nothing must change), with the
reason. The master runs it over every volume after any change it hears of; the volumes whose
mapping changes are the ones an epoch quiesces. Rules:

- a leg on a failed, removed or maintenance device, or on a node that is down, leaves the mapping;
  an in-sync one (but on a removed device) is kept as detached until the volume has its redundancy
  back: if the other copies are lost meanwhile it is what is left, so nothing deletes it before;
- a leg whose node restarted since its incarnation, or that its owner reports dropped or lost, is
  rebuilt in place under a new incarnation — unless it is the last copy of the data, which stays;
- a leg its owner reports out of its raid missed writes: it is never a source while an in-sync leg
  it does not report is at hand, and it is rebuilt with any other change of the mapping;
- the last in-sync leg is never dropped: when every in-sync leg is out of reach (or only legs that
  missed writes are reachable) the volume is marked failed and its mapping left alone, so it comes
  back when they do;
- missing copies are placed on other nodes first, then other devices; a volume whose owner is
  gone is reassembled on the node of one of its in-sync legs (fewest volumes owned first).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from spdkvirt.model.placement import Capacity, NoSpace
from spdkvirt.model.records import Device, Leg, Node, Volume


@dataclass(frozen=True)
class ClusterView:
    """Nodes, which of them hold their agent lease, and devices."""

    nodes: Mapping[str, Node]
    alive: frozenset[str]
    devices: Mapping[tuple[str, str], Device]

    def node_ok(self, node: str) -> bool:
        n = self.nodes.get(node)
        return n is not None and n.state == "up" and node in self.alive

    def leg_ok(self, leg: Leg) -> bool:
        d = self.devices.get((leg.node, leg.device))
        return self.node_ok(leg.node) and d is not None and d.usable

    def boot(self, node: str) -> str:
        n = self.nodes.get(node)
        return n.boot_id if n is not None else ""

    def restarted(self, leg: Leg) -> bool:
        return bool(leg.node_boot) and self.boot(leg.node) != leg.node_boot

    def usable_nodes(self) -> frozenset[str]:
        return frozenset(n for n in self.nodes if self.node_ok(n))


@dataclass(frozen=True)
class Remap:
    volume: Volume
    reason: str = ""
    detail: str = ""
    placed: tuple[Leg, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return bool(self.reason)


def leg_id(volume: Volume, serial: int) -> str:
    return f"{volume.uuid.replace('-', '')[:12]}.{serial}"


def _new_leg(volume: Volume, serial: int, device: Device, cluster: ClusterView, state: str) -> Leg:
    boot = cluster.boot(device.node)
    return Leg(leg_id(volume, serial), device.node, device.device_id, device.lvstore, state, 1, boot)


def place_volume(
    volume: Volume,
    cluster: ClusterView,
    capacity: Capacity,
    owned: Mapping[str, int],
    *,
    nodes: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> Volume:
    """Legs and owner for a new volume (``volume.legs`` empty). Raises NoSpace."""
    usable = set(cluster.usable_nodes()) - set(exclude)
    only = usable & set(nodes) if nodes else usable
    legs: list[Leg] = []
    try:
        for serial in range(1, volume.redundancy + 1):
            used = {leg.node for leg in legs}
            devices = {(leg.node, leg.device) for leg in legs}
            d = capacity.choose(
                volume.size_bytes, volume.thin, avoid_nodes=used, avoid_devices=devices, only_nodes=only
            )
            legs.append(_new_leg(volume, serial, d, cluster, "new"))
    except NoSpace:
        for leg in legs:  # the volume is not made: give back what its first legs took
            capacity.committed[(leg.node, leg.device)] -= volume.size_bytes
        raise
    owner = min({leg.node for leg in legs}, key=lambda n: (owned.get(n, 0), n))
    return replace(volume, legs=tuple(legs), owner=owner, leg_serial=volume.redundancy, state="creating")


def _state(volume: Volume, legs: tuple[Leg, ...]) -> str:
    if volume.state == "creating" and all(leg.state == "new" for leg in legs):
        return "creating"
    if len(legs) >= volume.redundancy and all(leg.state == "in_sync" for leg in legs):
        return "online"
    return "degraded"


def remap(
    volume: Volume,
    cluster: ClusterView,
    capacity: Capacity,
    owned: Mapping[str, int],
    suspects: Collection[str] = (),
    dropped: Collection[str] = (),
) -> Remap:
    """The next mapping of ``volume``; ``suspects``: leg ids its owner has reported dropped or lost
    for long enough to rebuild them; ``dropped``: every leg it reports so now (suspects or not yet)."""
    if volume.state == "deleting":
        return Remap(volume)
    creating = volume.state == "creating"
    missed = frozenset(dropped) | frozenset(suspects)  # legs that missed writes
    gone = [leg for leg in volume.legs if not cluster.leg_ok(leg)]
    ok = [leg for leg in volume.legs if cluster.leg_ok(leg)]
    stale = {leg.leg_id for leg in ok if cluster.restarted(leg) or leg.leg_id in suspects}
    sources = [leg for leg in ok if leg.state == "in_sync" and leg.leg_id not in stale | missed]
    reexported: list[str] = []
    if not sources and not creating:
        last = [leg for leg in ok if leg.state == "in_sync"]
        newer = [leg.leg_id for leg in gone if leg.state == "in_sync" and leg.leg_id not in missed]
        if not last or (newer and all(leg.leg_id in missed for leg in last)):
            if volume.state == "failed":
                return Remap(volume)
            why = "every in-sync leg is out of reach"
            if last:
                why = f"the reachable legs missed writes; waiting for {','.join(newer)}"
            lost_node = any(not cluster.node_ok(leg.node) for leg in volume.legs if leg.state == "in_sync")
            failed = replace(volume, state="failed", generation=volume.generation + 1)
            return Remap(failed, "node_failed" if lost_node else "device_failed", why)
        keep = min(last, key=lambda leg: (leg.leg_id in missed, leg.leg_id))
        sources = [keep]
        stale.discard(keep.leg_id)
        if cluster.restarted(keep):
            # the only copy stays in sync, under an incarnation its node exports again
            kept = replace(keep, incarnation=keep.incarnation + 1, node_boot=cluster.boot(keep.node))
            ok = [kept if leg.leg_id == keep.leg_id else leg for leg in ok]
            reexported.append(keep.leg_id)
    if gone or stale or not cluster.node_ok(volume.owner) or len(ok) < volume.redundancy or volume.state == "failed":
        # changing anyway: what missed writes is rebuilt now
        stale |= {leg.leg_id for leg in ok if leg.state == "in_sync" and leg.leg_id in missed} - {
            leg.leg_id for leg in sources
        }
    legs: list[Leg] = []
    reincarnated: list[str] = []
    for leg in ok:
        if leg.leg_id in stale:
            fresh = "new" if creating else "rebuilding"
            legs.append(replace(leg, state=fresh, incarnation=leg.incarnation + 1, node_boot=cluster.boot(leg.node)))
            reincarnated.append(leg.leg_id)
        else:
            legs.append(leg)
    serial = volume.leg_serial
    placed: list[Leg] = []
    while len(legs) < volume.redundancy:
        used_nodes = {leg.node for leg in legs}
        used_devices = {(leg.node, leg.device) for leg in legs}
        try:
            d = capacity.choose(volume.size_bytes, volume.thin, avoid_nodes=used_nodes, avoid_devices=used_devices)
        except NoSpace:
            break
        serial += 1
        leg = _new_leg(volume, serial, d, cluster, "new" if creating else "rebuilding")
        legs.append(leg)
        placed.append(leg)
    owner = volume.owner
    if not cluster.node_ok(owner):
        candidates = {leg.node for leg in legs if leg.state in ("in_sync", "new")} or {leg.node for leg in legs}
        owner = min(candidates, key=lambda n: (owned.get(n, 0), n)) if candidates else owner
    new_legs = tuple(legs)
    state = _state(volume, new_legs)
    detached = _detached(volume, gone, cluster, state)
    if new_legs == volume.legs and owner == volume.owner and state == volume.state and detached == volume.detached:
        return Remap(volume)
    reason, detail = _reason(volume, cluster, gone, reincarnated + reexported, placed, owner)
    if reexported:
        detail = detail.replace("rebuild in place", "re-export or rebuild in place")
    nxt = replace(volume, legs=new_legs, owner=owner, state=state, generation=volume.generation + 1, leg_serial=serial,
                  detached=detached)  # fmt: skip
    return Remap(nxt, reason, detail, tuple(placed))


def _detached(volume: Volume, gone: list[Leg], cluster: ClusterView, state: str) -> tuple[Leg, ...]:
    """The copies kept out of the mapping: those kept so far and the in-sync legs leaving it now
    (but from a removed device, which its operator gave up), until the volume is online again."""
    if state == "online":
        return ()  # redundancy is back: the master disowns them, their nodes delete them
    kept = {leg.leg_id for leg in volume.detached}
    out = list(volume.detached)
    for leg in gone:
        d = cluster.devices.get((leg.node, leg.device))
        if leg.state == "in_sync" and leg.leg_id not in kept and not (d is not None and d.state == "removed"):
            out.append(leg)
    return tuple(out)


def _reason(
    volume: Volume, cluster: ClusterView, gone: list[Leg], reincarnated: list[str], placed: list[Leg], owner: str
) -> tuple[str, str]:
    parts = []
    if gone:
        parts.append("lost " + ",".join(f"{leg.leg_id}@{leg.node}/{leg.device}" for leg in gone))
    if reincarnated:
        parts.append("rebuild in place " + ",".join(reincarnated))
    if placed:
        parts.append("new " + ",".join(f"{leg.leg_id}@{leg.node}/{leg.device}" for leg in placed))
    if owner != volume.owner:
        parts.append(f"owner {volume.owner} -> {owner}")
    detail = "; ".join(parts)
    if any(not cluster.node_ok(leg.node) for leg in gone) or not cluster.node_ok(volume.owner):
        return "node_failed", detail
    if gone:
        return "device_failed", detail
    if reincarnated:
        return "node_added" if any(cluster.restarted(leg) for leg in volume.legs) else "device_failed", detail
    return ("device_added" if placed else "rebalance"), detail


def promote(volume: Volume, in_sync: Collection[str], generation: int) -> Volume:
    """The volume after its owner reported ``in_sync`` legs (for mapping ``generation``): rebuilt
    and new legs become in-sync; a created volume comes online."""
    if generation != volume.generation:
        return volume
    legs = tuple(
        replace(leg, state="in_sync") if leg.leg_id in in_sync and leg.state != "in_sync" else leg
        for leg in volume.legs
    )
    if legs == volume.legs:
        return volume
    state = "online" if len(legs) >= volume.redundancy and all(x.state == "in_sync" for x in legs) else "degraded"
    detached = () if state == "online" else volume.detached
    return replace(volume, legs=legs, state=state, generation=volume.generation + 1, detached=detached)
