"""The master's decisions: placing new volumes, remapping after a change, promoting rebuilt legs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import pytest

from spdkvirt.model.placement import Capacity, NoSpace
from spdkvirt.model.records import Device, Leg, Node, Volume
from spdkvirt.model.remap import ClusterView, Remap, leg_id, place_volume, promote, remap
from tests.unit.model.builders import GIB, boot_of, cluster, device, leg, node, volume

NODES = ("n1", "n2", "n3", "n4")


@dataclass(frozen=True)
class World:
    """The cluster a remap sees: nodes ``down`` in the database or ``dead`` (lease lost), nodes on
    their second boot, failed devices."""

    down: tuple[str, ...] = ()
    dead: tuple[str, ...] = ()
    rebooted: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    nodes: tuple[str, ...] = NODES
    devices: tuple[str, ...] = ("d1", "d2")

    def parts(self) -> tuple[list[Node], list[Device]]:
        ns = [
            node(n, state="down" if n in self.down else "up", boot=2 if n in self.rebooted else 1) for n in self.nodes
        ]
        ds = [
            device(
                n, d, state="failed" if (n, d) in self.failed else "removed" if (n, d) in self.removed else "available"
            )
            for n in self.nodes
            for d in self.devices
        ]
        return ns, ds

    def cluster(self) -> ClusterView:
        ns, ds = self.parts()
        return cluster(ns, ds, dead=self.dead)


def run(
    v: Volume,
    world: World = World(),
    *,
    others: Iterable[Volume] = (),
    owned: Mapping[str, int] | None = None,
    suspects: Iterable[str] = (),
    dropped: Iterable[str] = (),
) -> tuple[Remap, ClusterView, Capacity]:
    c = world.cluster()
    cap = Capacity.of(world.parts()[1], [v, *others], c.usable_nodes())
    return remap(v, c, cap, owned or {}, tuple(suspects), tuple(dropped)), c, cap


def again(r: Remap, c: ClusterView, cap: Capacity) -> Remap:
    """Remap the result once more: a settled mapping must not change."""
    return remap(r.volume, c, cap, {})


V = volume("v1", [leg("n1", "d1"), leg("n2", "d1")])  # online, owner n1
A, B = V.legs


def where(legs: Iterable[Leg]) -> list[tuple[str, str, str]]:
    return [(x.node, x.device, x.state) for x in legs]


# ---- device and node failures -------------------------------------------------------------------
def test_failed_device_leg_is_replaced_on_another_node() -> None:
    r, c, cap = run(V, World(failed=(("n2", "d1"), ("n2", "d2"))))
    new = Leg(leg_id(V, 3), "n3", "d1", "lvs_d1", "rebuilding", 1, boot_of("n3"))
    assert r.changed
    assert r.reason == "device_failed"
    assert r.volume.legs == (A, new)
    assert r.placed == (new,)
    assert (r.volume.owner, r.volume.state, r.volume.generation, r.volume.leg_serial) == ("n1", "degraded", 2, 3)
    assert r.detail == f"lost {B.leg_id}@n2/d1; new {new.leg_id}@n3/d1"
    assert cap.committed[("n3", "d1")] == GIB
    assert not again(r, c, cap).changed


def test_replacement_may_stay_on_the_node_of_the_failed_device() -> None:
    r, *_ = run(V, World(failed=(("n2", "d1"),)))
    assert where(r.volume.legs) == [("n1", "d1", "in_sync"), ("n2", "d2", "rebuilding")]


def test_replacement_goes_to_another_device_of_the_same_node_last() -> None:
    v = volume("v1", [leg("n1", "d1"), leg("n1", "d2")])
    r, *_ = run(v, World(failed=(("n1", "d2"),), nodes=("n1",), devices=("d1", "d2", "d3")))
    assert where(r.volume.legs) == [("n1", "d1", "in_sync"), ("n1", "d3", "rebuilding")]


def test_replacement_never_shares_a_device_with_another_leg() -> None:
    v = volume("v1", [leg("n1", "d1"), leg("n1", "d2")])
    r, *_ = run(v, World(failed=(("n1", "d2"),), nodes=("n1",)))
    assert where(r.volume.legs) == [("n1", "d1", "in_sync")]
    assert r.placed == ()


def test_no_space_leaves_the_volume_degraded() -> None:
    r, c, cap = run(V, World(failed=(("n2", "d1"),), nodes=("n1", "n2"), devices=("d1",)))
    assert r.reason == "device_failed"
    assert r.volume.legs == (A,)
    assert r.placed == ()
    assert (r.volume.state, r.volume.generation, r.volume.leg_serial) == ("degraded", 2, 2)
    assert not again(r, c, cap).changed


@pytest.mark.parametrize("how", ["down", "lease-lost"])
def test_owner_node_failure_replaces_its_legs_and_moves_the_owner(how: str) -> None:
    r, c, cap = run(V, World(down=("n1",)) if how == "down" else World(dead=("n1",)))
    assert r.reason == "node_failed"
    assert r.volume.owner == "n2"
    assert where(r.volume.legs) == [("n2", "d1", "in_sync"), ("n3", "d1", "rebuilding")]
    assert "owner n1 -> n2" in r.detail
    assert not again(r, c, cap).changed


def test_leg_node_failure_is_a_node_failure() -> None:
    r, *_ = run(V, World(down=("n2",)))
    assert (r.reason, r.volume.owner) == ("node_failed", "n1")
    assert where(r.volume.legs) == [("n1", "d1", "in_sync"), ("n3", "d1", "rebuilding")]


def test_new_owner_is_the_in_sync_leg_node_owning_fewest_volumes() -> None:
    v = volume("v1", [leg("n1", "d1"), leg("n2", "d1"), leg("n3", "d1")])
    r, *_ = run(v, World(down=("n1",)), owned={"n2": 5, "n3": 1})
    assert r.volume.owner == "n3"
    r, *_ = run(v, World(down=("n1",)), owned={"n2": 1, "n3": 5})
    assert r.volume.owner == "n2"


def test_new_owner_is_never_a_rebuilding_leg_node() -> None:
    v = volume("v1", [leg("n1", "d1"), leg("n2", "d1", "rebuilding"), leg("n3", "d1")], state="degraded")
    r, *_ = run(v, World(down=("n1",)), owned={"n3": 9})
    assert r.volume.owner == "n3"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(World(failed=(("n1", "d1"),)), id="device-failed"),
        pytest.param(World(down=("n1",)), id="node-down"),
        pytest.param(World(dead=("n1",)), id="lease-lost"),
        pytest.param(World(nodes=("n2", "n3")), id="node-removed"),
    ],
)
def test_last_in_sync_leg_out_of_reach_fails_the_volume(change: World) -> None:
    v = volume("v1", [leg("n1", "d1"), leg("n2", "d1", "rebuilding")], state="degraded")
    r, c, cap = run(v, change)
    assert r.reason == ("device_failed" if change.failed else "node_failed")
    assert r.volume == replace(v, state="failed", generation=2)
    again_ = again(r, c, cap)
    assert not again_.changed
    assert again_.volume is r.volume


# ---- restarts and suspects --------------------------------------------------------------------
def test_restarted_node_legs_are_rebuilt_in_place() -> None:
    r, c, cap = run(V, World(rebooted=("n2",)))
    assert r.reason == "node_added"
    assert r.volume.legs == (A, replace(B, state="rebuilding", incarnation=2, node_boot=boot_of("n2", 2)))
    assert r.placed == ()
    assert (r.volume.state, r.volume.generation, r.volume.leg_serial) == ("degraded", 2, 2)
    assert r.detail == f"rebuild in place {B.leg_id}"
    assert not again(r, c, cap).changed


def test_restarted_node_legs_of_a_volume_being_created_start_again_blank() -> None:
    v = volume("v1", [leg("n1", "d1", "new"), leg("n2", "d1", "new")])
    r, *_ = run(v, World(rebooted=("n2",)))
    assert r.volume.state == "creating"
    assert r.volume.legs[1] == replace(v.legs[1], incarnation=2, node_boot=boot_of("n2", 2))


@pytest.mark.parametrize(
    "v",
    [
        pytest.param(volume("v1", [leg("n1", "d1", "rebuilding"), leg("n2", "d1")], state="degraded"), id="raid1"),
        pytest.param(volume("v1", [leg("n2", "d1")], owner="n2"), id="single-leg"),
    ],
)
def test_restarted_node_with_the_only_copy_keeps_it(v: Volume) -> None:
    r, c, cap = run(v, World(rebooted=("n2",)))
    only = next(x for x in v.legs if x.node == "n2")
    kept = next(x for x in r.volume.legs if x.leg_id == only.leg_id)
    # still the source, but under an incarnation its restarted node exports again
    assert kept == replace(only, incarnation=2, node_boot=boot_of("n2", 2))
    assert r.reason == "node_added"
    assert not again(r, c, cap).changed


def test_when_every_copy_restarted_one_is_kept_and_the_others_rebuilt() -> None:
    r, *_ = run(V, World(rebooted=("n1", "n2")))
    kept_a = replace(A, incarnation=2, node_boot=boot_of("n1", 2))
    assert r.volume.legs == (kept_a, replace(B, state="rebuilding", incarnation=2, node_boot=boot_of("n2", 2)))


def test_suspect_leg_is_rebuilt_in_place() -> None:
    r, c, cap = run(V, suspects=[B.leg_id])
    assert r.reason == "device_failed"
    assert r.volume.legs == (A, replace(B, state="rebuilding", incarnation=2))
    assert not again(r, c, cap).changed


def test_suspect_only_copy_stays() -> None:
    v = volume("v1", [leg("n1", "d1", "rebuilding"), leg("n2", "d1")], state="degraded")
    r, *_ = run(v, suspects=[v.legs[1].leg_id])
    assert r.volume is v


def test_of_two_suspects_the_first_copy_stays() -> None:
    r, *_ = run(V, suspects=[A.leg_id, B.leg_id])
    assert r.volume.legs == (A, replace(B, state="rebuilding", incarnation=2))


def test_unsuspected_copy_stays_before_a_suspected_one() -> None:
    v = volume("v1", [leg("n1", "d1"), leg("n2", "d1")])
    r, *_ = run(v, World(rebooted=("n2",)), suspects=[v.legs[0].leg_id])
    # the restarted copy is kept as the source (re-exported under a new incarnation, still in sync)
    assert r.volume.legs[1] == replace(v.legs[1], incarnation=2, node_boot=boot_of("n2", 2))
    assert r.volume.legs[0].incarnation == 2
    assert r.volume.legs[0].state == "rebuilding"


# legs the owner reports out of its raid, before the grace has passed (window 10)
def test_dropped_leg_waits_out_the_grace_while_nothing_else_changes() -> None:
    r, *_ = run(V, dropped=[B.leg_id])
    assert r.volume is V


@pytest.mark.parametrize("how", [World(down=("n1",)), World(dead=("n1",)), World(failed=(("n1", "d1"),))])
def test_dropped_leg_is_no_source_while_the_copy_that_has_every_write_is_out_of_reach(how: World) -> None:
    r, *_ = run(V, how, dropped=[B.leg_id])
    assert r.volume.state == "failed" and r.volume.legs == V.legs and r.volume.owner == "n1"
    assert "missed writes" in r.detail


def test_dropped_leg_is_rebuilt_with_any_other_change() -> None:
    v = volume("v1", [leg("n1", "d1"), leg("n2", "d1"), leg("n3", "d1")])
    _, b, c = v.legs
    r, *_ = run(v, World(dead=("n1",)), dropped=[b.leg_id])
    assert r.volume.owner == "n3"
    assert {x.leg_id: x.state for x in r.volume.legs} == {c.leg_id: "in_sync", b.leg_id: "rebuilding",
                                                          r.volume.legs[-1].leg_id: "rebuilding"}  # fmt: skip


def test_copy_that_has_every_write_comes_back_and_the_dropped_leg_is_rebuilt() -> None:
    failed = replace(V, state="failed", generation=2)
    r, *_ = run(failed, World(rebooted=("n1",)), dropped=[B.leg_id])
    assert r.volume.owner == "n1"
    assert r.volume.legs == (
        replace(A, incarnation=2, node_boot=boot_of("n1", 2)),
        replace(B, state="rebuilding", incarnation=2),
    )


def test_dropped_only_copy_at_hand_stays_when_no_other_copy_is_known() -> None:
    v = volume("v1", [leg("n1", "d1", "rebuilding"), leg("n2", "d1")], state="degraded")
    r, *_ = run(v, World(dead=("n1",)), dropped=[v.legs[1].leg_id])
    assert r.volume.owner == "n2" and r.volume.leg(v.legs[1].leg_id) == v.legs[1]


# ---- what does not change ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(World(), id="nothing"),
        pytest.param(World(failed=(("n3", "d1"),)), id="other-device-failed"),
        pytest.param(World(down=("n3",)), id="other-node-down"),
        pytest.param(World(dead=("n4",)), id="other-lease-lost"),
        pytest.param(World(rebooted=("n3",)), id="other-node-restarted"),
        pytest.param(World(nodes=(*NODES, "n5")), id="node-added"),
        pytest.param(World(devices=("d1", "d2", "d3")), id="devices-added"),
    ],
)
def test_volumes_a_change_does_not_touch_stay_unchanged(change: World) -> None:
    r, *_ = run(V, change)
    assert not r.changed
    assert r.volume is V
    assert (r.reason, r.detail, r.placed) == ("", "", ())


def test_deleting_volume_is_left_alone() -> None:
    v = replace(V, state="deleting")
    r, *_ = run(v, World(down=("n1", "n2")))
    assert r.volume is v


def test_volume_being_created_gets_a_new_blank_leg_for_a_lost_one() -> None:
    v = volume("v1", [leg("n1", "d1", "new"), leg("n2", "d1", "new")])
    r, *_ = run(v, World(failed=(("n2", "d1"),)))
    assert where(r.volume.legs) == [("n1", "d1", "new"), ("n2", "d2", "new")]
    assert r.volume.state == "creating"


def test_missing_copies_are_placed_when_room_appears() -> None:
    v = volume("v1", [leg("n1", "d1")], redundancy=2, state="degraded")
    r, *_ = run(v)
    assert r.reason == "device_added"
    assert where(r.volume.legs) == [("n1", "d1", "in_sync"), ("n2", "d1", "rebuilding")]


# ---- detached copies (window 4) -------------------------------------------------------------------
@pytest.mark.parametrize(
    "world", [World(down=("n2",)), World(dead=("n2",)), World(failed=(("n2", "d1"),))], ids=["down", "dead", "failed"]
)
def test_in_sync_copy_out_of_reach_leaves_the_mapping_detached(world: World) -> None:
    r, c, cap = run(V, world)
    assert B not in r.volume.legs and r.volume.detached == (B,)
    assert not again(r, c, cap).changed


def test_copy_on_a_removed_device_is_disowned() -> None:
    r, *_ = run(V, World(removed=(("n2", "d1"),)))
    assert B not in r.volume.legs and r.volume.detached == ()


def test_rebuilding_leg_out_of_reach_is_no_copy_to_keep() -> None:
    v = with_leg_states(V, "in_sync", "rebuilding")
    r, *_ = run(v, World(down=("n2",)))
    assert r.volume.detached == ()


def test_detached_copy_is_kept_while_the_volume_fails_and_comes_back() -> None:
    two = {"nodes": ("n1", "n2"), "devices": ("d1",)}  # room for no other copy
    r, *_ = run(V, World(down=("n2",), **two))  # type: ignore[arg-type]
    assert r.volume.detached == (B,) and r.volume.legs == (A,)
    lost = run(r.volume, World(down=("n1", "n2"), **two))[0]  # type: ignore[arg-type]
    assert lost.volume.state == "failed" and lost.volume.detached == (B,)
    back = run(lost.volume, World(down=("n2",), **two))[0]  # type: ignore[arg-type]
    assert back.volume.state == "degraded" and back.volume.detached == (B,)


def test_detached_copies_are_disowned_once_the_volume_is_online() -> None:
    r, *_ = run(V, World(down=("n2",)))
    new = r.volume.legs[1]
    online = promote(r.volume, [new.leg_id], r.volume.generation)
    assert online.state == "online" and online.detached == ()


def test_detached_copy_keeps_its_room() -> None:
    r, *_ = run(V, World(down=("n2",)))
    cap = Capacity.of(World().parts()[1], [r.volume], World().cluster().usable_nodes())
    assert cap.committed[("n2", "d1")] == GIB


def with_leg_states(v: Volume, *states: str) -> Volume:
    return replace(v, legs=tuple(replace(x, state=s) for x, s in zip(v.legs, states, strict=True)), state="degraded")


# ---- promote --------------------------------------------------------------------------------------
DEGRADED = volume(
    "v1",
    [leg("n1", "d1"), leg("n2", "d1", "rebuilding"), leg("n3", "d1", "rebuilding")],
    state="degraded",
    generation=4,
)


def test_promote_moves_rebuilt_legs_in_sync() -> None:
    ids = [x.leg_id for x in DEGRADED.legs]
    v = promote(DEGRADED, [ids[1]], 4)
    assert [x.state for x in v.legs] == ["in_sync", "in_sync", "rebuilding"]
    assert (v.state, v.generation) == ("degraded", 5)
    v = promote(v, [ids[2]], 5)
    assert [x.state for x in v.legs] == ["in_sync"] * 3
    assert (v.state, v.generation) == ("online", 6)


@pytest.mark.parametrize("generation", [3, 5], ids=["older", "newer"])
def test_promote_ignores_another_generation(generation: int) -> None:
    assert promote(DEGRADED, [x.leg_id for x in DEGRADED.legs], generation) is DEGRADED


@pytest.mark.parametrize(
    "in_sync", [pytest.param([], id="none"), pytest.param(["nope.1"], id="unknown"), pytest.param(["first"], id="same")]
)
def test_promote_without_news_changes_nothing(in_sync: list[str]) -> None:
    ids = [DEGRADED.legs[0].leg_id if x == "first" else x for x in in_sync]
    assert promote(DEGRADED, ids, 4) is DEGRADED


def test_promote_brings_a_created_volume_online() -> None:
    v = volume("v1", [leg("n1", "d1", "new"), leg("n2", "d1", "new")])
    p = promote(v, [x.leg_id for x in v.legs], 1)
    assert (p.state, p.generation, [x.state for x in p.legs]) == ("online", 2, ["in_sync", "in_sync"])


def test_promote_of_a_short_volume_stays_degraded() -> None:
    v = volume("v1", [leg("n1", "d1"), leg("n2", "d1", "rebuilding")], redundancy=3, state="degraded")
    assert promote(v, [v.legs[1].leg_id], 1).state == "degraded"


# ---- new volumes -----------------------------------------------------------------------------------
def blank(redundancy: int, size: int = GIB, thin: bool = True) -> Volume:
    return replace(volume("v1", redundancy=redundancy, size=size, thin=thin), legs=(), owner="", state="creating")


def place(
    v: Volume,
    world: World = World(),
    *,
    owned: Mapping[str, int] | None = None,
    nodes: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> tuple[Volume, Capacity]:
    c = world.cluster()
    cap = Capacity.of(world.parts()[1], [], c.usable_nodes())
    return place_volume(v, c, cap, owned or {}, nodes=None if nodes is None else set(nodes), exclude=set(exclude)), cap


@pytest.mark.parametrize("redundancy", [1, 2, 3, 4])
def test_new_volume_legs_go_to_distinct_nodes(redundancy: int) -> None:
    v, cap = place(blank(redundancy))
    assert len({x.node for x in v.legs}) == redundancy
    assert [x.leg_id for x in v.legs] == [leg_id(v, i) for i in range(1, redundancy + 1)]
    assert all(x.state == "new" and x.incarnation == 1 and x.node_boot == boot_of(x.node) for x in v.legs)
    assert all(x.lvstore == f"lvs_{x.device}" for x in v.legs)
    assert (v.state, v.leg_serial) == ("creating", redundancy)
    assert v.owner in {x.node for x in v.legs}
    assert sum(cap.committed.values()) == redundancy * GIB


def test_new_volume_owner_owns_fewest_volumes() -> None:
    v, _ = place(blank(3), owned={"n1": 3, "n2": 1, "n3": 2})
    assert v.owner == "n2"


def test_new_volume_on_the_nodes_asked_for() -> None:
    v, _ = place(blank(2), nodes=["n3", "n4"])
    assert {x.node for x in v.legs} == {"n3", "n4"}
    v, _ = place(blank(2), exclude=["n1", "n2"])
    assert {x.node for x in v.legs} == {"n3", "n4"}
    v, _ = place(blank(2), World(dead=("n1", "n2")))
    assert {x.node for x in v.legs} == {"n3", "n4"}


def test_new_volume_copies_never_share_a_device() -> None:
    world = World(nodes=("n1",))
    ds = world.parts()[1]
    c = world.cluster()
    other = volume("busy", [leg("n1", "d2")], size=150 * GIB)
    cap = Capacity.of(ds, [other], c.usable_nodes())
    v = place_volume(blank(2), c, cap, {})
    assert sorted(x.device for x in v.legs) == ["d1", "d2"]
    with pytest.raises(NoSpace):
        place_volume(blank(3), c, cap, {})


def test_new_volume_that_does_not_fit_raises_and_commits_nothing() -> None:
    world = World(nodes=("n1", "n2"), devices=("d1",))
    ds = world.parts()[1]
    c = world.cluster()
    cap = Capacity.of(ds, [], c.usable_nodes())
    with pytest.raises(NoSpace):
        place_volume(blank(3), c, cap, {})
    with pytest.raises(NoSpace):
        place_volume(blank(1, size=101 * GIB, thin=False), c, cap, {})
    assert set(cap.committed.values()) == {0}
