"""The node planner: new volumes, its safety rules, holds, degraded starts and garbage collection.

Most tests build what a node's SPDK holds with :class:`~tests.unit.model.builders.Target` (in the
shapes a real target reports), plan, and check the steps; convergence tests apply the steps to the
targets and plan again until nothing is left to do.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from spdkvirt.model import names
from spdkvirt.model.placement import Capacity
from spdkvirt.model.plan import NULL_PREFIX, NodeView, Options, identity_of, plan_node
from spdkvirt.model.records import Leg, Node, Volume
from spdkvirt.model.remap import promote, remap
from spdkvirt.model.steps import Plan, Stage
from tests.unit.model.builders import (
    GIB,
    Target,
    address_of,
    cluster,
    converge,
    device,
    export,
    fixed_uuid,
    leg,
    node,
    settle,
    staged,
    steps_of,
    view,
    volume,
)

HOST = "nqn.2014-08.org.nvmexpress:uuid:" + fixed_uuid("host", "h1")


def alias(x: Leg) -> str:
    return names.lvol_alias(x.lvstore, x.leg_id)


def remote_bdev(x: Leg) -> str:
    return names.remote_bdev(x.leg_id, x.incarnation)


def online(v: Volume) -> Volume:
    """The volume after its owner reported every leg in sync."""
    return replace(v, state="online", legs=tuple(replace(x, state="in_sync") for x in v.legs))


def with_states(v: Volume, *states: str) -> Volume:
    return replace(v, legs=tuple(replace(x, state=s) for x, s in zip(v.legs, states, strict=True)))


def member(t: Target, v: Volume, x: Leg) -> str:
    """The bdev through which the owner ``t`` reaches leg ``x``."""
    if x.node == t.node.node_id:
        found = t.find(alias(x))
        assert found is not None
        return found.name
    return remote_bdev(x)


def findings(p: Plan) -> list[tuple[str, str]]:
    return [(f.kind, f.leg) for f in p.findings]


def keyed(p: Plan) -> set[tuple[str, str, str]]:
    return {(s.stage.name.lower(), s.method, json.dumps(dict(s.params), sort_keys=True)) for s in p.steps}


LOCAL2 = volume("v1", [leg("n1", "d1", "new"), leg("n1", "d2", "new")])
REMOTE2 = volume("v1", [leg("n1", "d1", "new"), leg("n2", "d1", "new")])


# ---- new volumes ----------------------------------------------------------------------------
def test_new_local_volume_owner_plans_in_stage_order() -> None:
    v, e = LOCAL2, export(LOCAL2)
    t = Target(node("n1")).lvstore("d1").lvstore("d2")
    p = plan_node(view("n1", [v], exports=[e]), t.observed())
    assert staged(p) == [
        ("create", "bdev_lvol_create"),
        ("create", "bdev_lvol_create"),
        ("create", "bdev_error_create"),
        ("create", "nvmf_create_subsystem"),
        ("wire", "nvmf_subsystem_add_listener"),
        ("wire", "nvmf_subsystem_add_host"),
        ("assemble", "bdev_raid_create"),
        ("serve", "nvmf_subsystem_add_ns"),
    ]
    a, b = v.legs
    assert [dict(s.params) for s in steps_of(p, "bdev_lvol_create")] == [
        {"lvol_name": a.leg_id, "size_in_mib": 1024, "lvs_name": "lvs_d1", "thin_provision": True},
        {"lvol_name": b.leg_id, "size_in_mib": 1024, "lvs_name": "lvs_d2", "thin_provision": True},
    ]
    assert dict(steps_of(p, "bdev_raid_create")[0].params) == {
        "name": "vr-v1",
        "raid_level": "raid1",
        "base_bdevs": [alias(a), alias(b)],
    }
    assert dict(steps_of(p, "bdev_error_create")[0].params) == {"base_name": "vr-v1"}
    assert dict(steps_of(p, "nvmf_create_subsystem")[0].params) == {
        "nqn": names.volume_nqn("v1"),
        "allow_any_host": False,
        "ana_reporting": True,
        "serial_number": ("SV" + v.uuid.replace("-", "").upper())[:20],
    }
    ns = steps_of(p, "nvmf_subsystem_add_ns")[0].params["namespace"]
    assert ns == {"bdev_name": "EE_vr-v1", "uuid": v.uuid, "nguid": names.nguid(v.uuid), "nsid": 1}
    assert steps_of(p, "nvmf_subsystem_add_host")[0].params["host"] == HOST
    assert p.findings == ()


def test_new_volume_with_remote_leg_owner_attaches_first() -> None:
    v = REMOTE2
    b = v.legs[1]
    t = Target(node("n1")).lvstore("d1")
    p = plan_node(view("n1", [v], exports=[export(v)]), t.observed())
    assert staged(p) == [("create", "bdev_lvol_create"), ("attach", "bdev_nvme_attach_controller")]
    assert dict(steps_of(p, "bdev_nvme_attach_controller")[0].params) == {
        "name": names.remote_controller(b.leg_id, 1),
        "trtype": "TCP",
        "adrfam": "IPv4",
        "traddr": address_of("n2"),
        "trsvcid": "4420",
        "subnqn": names.leg_nqn(b.leg_id, 1),
        "hostnqn": names.node_nqn("n1"),
        "ctrlr_loss_timeout_sec": 2,
        "reconnect_delay_sec": 1,
        "fast_io_fail_timeout_sec": 1,
    }
    assert findings(p) == [("waiting_for_legs", "")]
    assert p.findings[0].detail == b.leg_id


def test_new_volume_with_remote_leg_owner_assembles_once_attached() -> None:
    v = REMOTE2
    a, b = v.legs
    t = Target(node("n1")).lvstore("d1")
    local = t.leg_lvol(v, a)
    t.controller(
        names.remote_controller(b.leg_id, 1), names.leg_nqn(b.leg_id, 1), address_of("n2"), uuid=identity_of(v, b)
    )
    p = plan_node(view("n1", [v], exports=[export(v)]), t.observed())
    assert staged(p) == [
        ("create", "bdev_error_create"),
        ("create", "nvmf_create_subsystem"),
        ("wire", "nvmf_subsystem_add_listener"),
        ("wire", "nvmf_subsystem_add_host"),
        ("assemble", "bdev_raid_create"),
        ("serve", "nvmf_subsystem_add_ns"),
    ]
    assert steps_of(p, "bdev_raid_create")[0].params["base_bdevs"] == [local, remote_bdev(b)]
    assert p.findings == ()


def test_leg_node_creates_the_lvol_and_exports_it_to_the_owner() -> None:
    v = REMOTE2
    b = v.legs[1]
    t = Target(node("n2")).lvstore("d1")
    p = plan_node(view("n2", [v]), t.observed())
    nqn = names.leg_nqn(b.leg_id, 1)
    ident = names.leg_identity(v.uuid, b.leg_id, 1)
    assert staged(p) == [
        ("create", "bdev_lvol_create"),
        ("create", "nvmf_create_subsystem"),
        ("wire", "nvmf_subsystem_add_listener"),
        ("wire", "nvmf_subsystem_add_host"),
        ("wire", "nvmf_subsystem_add_ns"),
    ]
    assert dict(steps_of(p, "nvmf_create_subsystem")[0].params) == {"nqn": nqn, "allow_any_host": False}
    assert dict(steps_of(p, "nvmf_subsystem_add_listener")[0].params) == {
        "nqn": nqn,
        "listen_address": {"trtype": "TCP", "adrfam": "IPv4", "traddr": address_of("n2"), "trsvcid": "4420"},
    }
    assert dict(steps_of(p, "nvmf_subsystem_add_host")[0].params) == {"nqn": nqn, "host": names.node_nqn("n1")}
    assert dict(steps_of(p, "nvmf_subsystem_add_ns")[0].params) == {
        "nqn": nqn,
        "namespace": {"bdev_name": alias(b), "uuid": ident, "nguid": names.nguid(ident), "nsid": 1},
    }
    assert p.findings == ()


def test_leg_export_uses_the_identity_the_record_names() -> None:
    ident = fixed_uuid("identity")
    v = volume("v1", [leg("n1", "d1", "new"), leg("n2", "d1", "new", identity=ident)])
    p = plan_node(view("n2", [v]), Target(node("n2")).lvstore("d1").observed())
    assert steps_of(p, "nvmf_subsystem_add_ns")[0].params["namespace"]["uuid"] == ident


LAYOUTS = [
    pytest.param(volume("v1", [leg("n1", "d1", "new")]), id="concat-one-leg"),
    pytest.param(LOCAL2, id="raid1-two-local-devices"),
    pytest.param(REMOTE2, id="raid1-remote-leg"),
    pytest.param(
        volume("v1", [leg("n1", "d1", "new"), leg("n2", "d1", "new"), leg("n3", "d2", "new")]), id="raid1-three-nodes"
    ),
    pytest.param(volume("v1", [leg("n1", "d1", "new"), leg("n2", "d1", "new")], owner="n3"), id="owner-without-leg"),
]


@pytest.mark.parametrize("v", LAYOUTS)
def test_new_volume_converges_and_then_plans_nothing(v: Volume) -> None:
    e = export(v)
    views = {n: view(n, [v], exports=[e]) for n in sorted(v.nodes())}
    targets = {n: Target(views[n].node) for n in views}
    for x in v.legs:
        targets[x.node].lvstore(x.device)
    history = converge(views, targets)
    assert len(history) <= 4
    owner = targets[v.owner]
    raid = owner.raids["vr-v1"]
    assert raid.level == v.raid_level
    assert raid.members == [member(owner, v, x) for x in v.legs]
    sub = owner.subsystems[names.volume_nqn("v1")]
    assert [(n.bdev, n.uuid) for n in sub.namespaces] == [("EE_vr-v1", v.uuid)]
    assert sub.hosts == [HOST]
    for x in v.legs:
        if x.node != v.owner:
            leg_sub = targets[x.node].subsystems[names.leg_nqn(x.leg_id, 1)]
            assert leg_sub.hosts == [names.node_nqn(v.owner)]
            assert leg_sub.namespaces[0].uuid == identity_of(v, x)
    # the same state, observed afresh and with the volume online, asks for nothing
    for n, vw in views.items():
        assert plan_node(vw, targets[n].observed()) == Plan()
        assert plan_node(view(n, [online(v)], exports=[e]), targets[n].observed()) == Plan()


def test_concat_volume_raid_parameters() -> None:
    v = volume("v1", [leg("n1", "d1", "new")])
    p = plan_node(view("n1", [v]), Target(node("n1")).lvstore("d1").observed())
    assert dict(steps_of(p, "bdev_raid_create")[0].params) == {
        "name": "vr-v1",
        "raid_level": "concat",
        "base_bdevs": [alias(v.legs[0])],
        "strip_size_kb": 64,
    }


def test_leg_on_a_device_whose_lvstore_is_not_loaded_is_reported() -> None:
    v = LOCAL2
    p = plan_node(view("n1", [v]), Target(node("n1")).lvstore("d1").observed())
    assert ("device_missing", v.legs[1].leg_id) in findings(p)
    assert ("waiting_for_legs", "") in findings(p)
    assert not steps_of(p, "bdev_raid_create")
    assert [s.params["lvs_name"] for s in steps_of(p, "bdev_lvol_create")] == ["lvs_d1"]


# ---- safety: the last in-sync member --------------------------------------------------------
def _last_member_setup(where: str) -> tuple[Volume, Target, str]:
    """A raid on n1 whose only configured member is the in-sync leg ``a``; the mapping no longer has
    ``a`` but a rebuilding leg instead (a mapping must never do this; the node must not obey)."""
    if where == "local":
        v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    else:
        v = online(volume("v1", [leg("n2", "d1"), leg("n1", "d1")]))
    t = settle(v)["n1"]
    a, b = v.legs
    t.drop_member(member(t, v, b))
    wanted = replace(v, legs=(replace(b, state="rebuilding"),), state="degraded")
    return wanted, t, member(t, v, a)


@pytest.mark.parametrize("where", ["local", "remote"])
def test_refused_last_in_sync(where: str) -> None:
    wanted, t, last = _last_member_setup(where)
    p = plan_node(view("n1", [wanted]), t.observed())
    assert findings(p) == [("refused_last_in_sync", "")]
    assert last in p.findings[0].detail
    assert not [s for s in steps_of(p, "bdev_raid_remove_base_bdev") if s.params["name"] == last]


@pytest.mark.parametrize("where", ["local", "remote"])
def test_refused_last_in_sync_member_is_not_collected(where: str) -> None:
    """Detaching its controller or deleting its lvol would take the member out all the same."""
    wanted, t, last = _last_member_setup(where)
    p = plan_node(view("n1", [wanted]), t.observed())
    assert not steps_of(p, "bdev_nvme_detach_controller")
    assert not steps_of(p, "bdev_lvol_delete")
    t.apply(p)
    assert last in t.raids["vr-v1"].members


def test_refused_last_in_sync_while_the_other_member_is_rebuilt() -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n1", "d2")]))
    t = settle(v)["n1"]
    b = v.legs[1]
    t.raids["vr-v1"].target = member(t, v, b)
    wanted = replace(v, legs=(replace(b, state="rebuilding"),), state="degraded")
    p = plan_node(view("n1", [wanted]), t.observed())
    assert findings(p) == [("refused_last_in_sync", "")]
    assert not steps_of(p, "bdev_raid_remove_base_bdev")


def test_member_the_mapping_dropped_is_removed_while_another_stays_in_sync() -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    t = settle(v)["n1"]
    a, b = v.legs
    wanted = replace(v, legs=(a,), state="degraded")
    p = plan_node(view("n1", [wanted]), t.observed())
    assert staged(p) == [("disassemble", "bdev_raid_remove_base_bdev"), ("detach", "bdev_nvme_detach_controller")]
    assert steps_of(p, "bdev_raid_remove_base_bdev")[0].params["name"] == remote_bdev(b)
    assert p.findings == ()


# ---- safety: legs SPDK dropped or lost ------------------------------------------------------
@pytest.mark.parametrize("which", [0, 1], ids=["local-leg", "remote-leg"])
def test_leg_dropped_is_reported_never_readded(which: int) -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    t = settle(v)["n1"]
    x = v.legs[which]
    t.drop_member(member(t, v, x))
    p = plan_node(view("n1", [v]), t.observed())
    assert findings(p) == [("leg_dropped", x.leg_id)]
    assert p.steps == ()


@pytest.mark.parametrize("which", [0, 1], ids=["on-owner", "on-leg-node"])
def test_leg_lost_is_reported_never_recreated(which: int) -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    targets = settle(v)
    x = v.legs[which]
    t = targets[x.node]
    found = t.find(alias(x))
    assert found is not None
    t.unplug(found.name)
    p = plan_node(view(x.node, [v]), t.observed())
    assert ("leg_lost", x.leg_id) in findings(p)
    assert not steps_of(p, "bdev_lvol_create")
    assert not steps_of(p, "nvmf_subsystem_add_ns")
    assert not steps_of(p, "bdev_raid_add_base_bdev")


def test_rebuilding_leg_whose_lvol_is_gone_is_created_again() -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    t = settle(v)["n2"]
    b = v.legs[1]
    found = t.find(alias(b))
    assert found is not None
    t.unplug(found.name)
    p = plan_node(view("n2", [with_states(v, "in_sync", "rebuilding")]), t.observed())
    assert staged(p) == [("create", "bdev_lvol_create"), ("wire", "nvmf_subsystem_add_ns")]


# ---- safety: rebuilds ------------------------------------------------------------------------
@pytest.mark.parametrize("which", [0, 1], ids=["local-leg", "remote-leg"])
def test_rebuilding_leg_is_added_with_add_base_bdev(which: int) -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    t = settle(v)["n1"]
    x = v.legs[which]
    name = member(t, v, x)
    t.drop_member(name)
    states = ["in_sync", "in_sync"]
    states[which] = "rebuilding"
    p = plan_node(view("n1", [with_states(v, *states)]), t.observed())
    assert staged(p) == [("grow", "bdev_raid_add_base_bdev")]
    assert dict(p.steps[0].params) == {"raid_bdev": "vr-v1", "base_bdev": name}
    assert p.findings == ()


def _three_legs() -> tuple[Volume, Target]:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1"), leg("n3", "d1")]))
    t = settle(v)["n1"]
    for x in v.legs[1:]:
        t.drop_member(member(t, v, x))
    return with_states(v, "in_sync", "rebuilding", "rebuilding"), t


def test_only_one_rebuild_is_started_at_a_time() -> None:
    v, t = _three_legs()
    p = plan_node(view("n1", [v]), t.observed())
    assert [(s.method, s.params["base_bdev"]) for s in p.steps] == [("bdev_raid_add_base_bdev", remote_bdev(v.legs[1]))]
    t.apply(p)
    assert plan_node(view("n1", [v]), t.observed()) == Plan()  # the rebuild runs: wait
    t.finish_rebuilds()
    v2 = with_states(v, "in_sync", "in_sync", "rebuilding")
    p = plan_node(view("n1", [v2]), t.observed())
    assert [(s.method, s.params["base_bdev"]) for s in p.steps] == [("bdev_raid_add_base_bdev", remote_bdev(v.legs[2]))]


def test_no_rebuild_is_started_while_one_runs() -> None:
    v, t = _three_legs()
    t.raids["vr-v1"].members[1] = remote_bdev(v.legs[1])
    t.raids["vr-v1"].target = remote_bdev(v.legs[1])
    p = plan_node(view("n1", [v]), t.observed())
    assert p == Plan()


def test_no_rebuild_is_started_while_the_volume_is_held() -> None:
    v, t = _three_legs()
    t.held = {"v1"}
    p = plan_node(view("n1", [v], held=["v1"]), t.observed())
    assert p == Plan()


def test_held_volume_halts_its_running_rebuild() -> None:
    v, t = _three_legs()
    target = remote_bdev(v.legs[1])
    t.raids["vr-v1"].members[1] = target
    t.raids["vr-v1"].target = target
    t.held = {"v1"}
    p = plan_node(view("n1", [v], held=["v1"]), t.observed())
    assert [(stage, s.method, s.params.get("name")) for stage, ss in p.stages() for s in ss] == [
        (Stage.DISASSEMBLE, "bdev_raid_remove_base_bdev", target)
    ]


# ---- safety: boots and identities -----------------------------------------------------------
@pytest.mark.parametrize("state", ["new", "rebuilding", "in_sync"])
def test_remote_leg_is_not_exported_by_another_boot_of_its_node(state: str) -> None:
    v = volume("v1", [leg("n1", "d1", state), leg("n2", "d1", state)], state="degraded")
    b = v.legs[1]
    t = Target(node("n2", boot=2)).lvstore("d1")
    t.leg_lvol(v, b)
    p = plan_node(view("n2", [v], nodes=[node("n2", boot=2)]), t.observed())
    assert not [s for s in p.steps if s.method.startswith("nvmf_")]
    assert p == Plan()


def test_export_of_a_former_boot_is_removed() -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    t = settle(v)["n2"]
    rebooted = replace(t.node, boot_id=node("n2", boot=2).boot_id)
    p = plan_node(view("n2", [v], nodes=[rebooted]), t.observed())
    assert [(s.method, s.params.get("nqn")) for s in p.steps] == [
        ("nvmf_delete_subsystem", names.leg_nqn(v.legs[1].leg_id, 1))
    ]


def test_owner_does_not_attach_a_leg_of_another_boot() -> None:
    v = volume("v1", [leg("n1", "d1", "new"), leg("n2", "d1", "new")])
    t = Target(node("n1")).lvstore("d1")
    p = plan_node(view("n1", [v], nodes=[node("n2", boot=2)]), t.observed())
    assert not steps_of(p, "bdev_nvme_attach_controller")


@pytest.mark.parametrize("state", ["new", "in_sync"])
def test_identity_mismatch_is_reported_and_not_used(state: str) -> None:
    v = volume("v1", [leg("n1", "d1", state), leg("n2", "d1", state)])
    a, b = v.legs
    t = Target(node("n1")).lvstore("d1")
    local = t.leg_lvol(v, a)
    ctrl = names.remote_controller(b.leg_id, 1)
    t.controller(ctrl, names.leg_nqn(b.leg_id, 1), address_of("n2"), uuid=fixed_uuid("someone else"))
    p = plan_node(view("n1", [v]), t.observed())
    assert ("identity_mismatch", b.leg_id) in findings(p)
    assert [s.params["name"] for s in steps_of(p, "bdev_nvme_detach_controller")] == [ctrl]
    for s in steps_of(p, "bdev_raid_create"):
        assert remote_bdev(b) not in s.params["base_bdevs"]
    if state == "in_sync":  # degraded start from the local leg
        assert steps_of(p, "bdev_raid_create")[0].params["base_bdevs"] == [local, f"{NULL_PREFIX}v1-0"]
    else:
        assert not steps_of(p, "bdev_raid_create")


# ---- degraded start ---------------------------------------------------------------------------
def _restarted_owner(v: Volume) -> Target:
    """n1 without its raid (gone, or the master renewed its legs after a restart): lvstore and leg lvols only."""
    t = Target(node("n1", boot=1))
    for x in v.legs:
        if x.node == "n1":
            t.leg_lvol(v, x)
    return t


def test_degraded_start_with_a_null_placeholder() -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    a, b = v.legs
    t = _restarted_owner(v)
    nodes = [node("n1", boot=1), node("n2", state="down")]
    vw = view("n1", [v], nodes=nodes, exports=[export(v)])
    p = plan_node(vw, t.observed())
    null = f"{NULL_PREFIX}v1-0"
    local = member(t, v, a)
    assert staged(p) == [
        ("create", "bdev_error_create"),
        ("create", "nvmf_create_subsystem"),
        ("wire", "nvmf_subsystem_add_listener"),
        ("wire", "nvmf_subsystem_add_host"),
        ("attach", "bdev_null_create"),
        ("assemble", "bdev_raid_create"),
        ("trim", "bdev_raid_remove_base_bdev"),
        ("grow", "bdev_null_delete"),
        ("serve", "nvmf_subsystem_add_ns"),
    ]
    assert dict(steps_of(p, "bdev_null_create")[0].params) == {
        "name": null,
        "num_blocks": GIB // 512,
        "block_size": 512,
    }
    assert steps_of(p, "bdev_raid_create")[0].params["base_bdevs"] == [local, null]
    assert steps_of(p, "bdev_raid_remove_base_bdev")[0].params["name"] == null
    assert findings(p) == [("leg_unreachable", b.leg_id)]
    t.apply(p)
    assert t.raids["vr-v1"].members == [local, None]
    assert null not in t.bdevs
    again = plan_node(vw, t.observed())
    assert again.steps == ()
    assert findings(again) == [("leg_dropped", b.leg_id)]


def test_degraded_start_with_a_rebuilding_leg_as_placeholder() -> None:
    v = with_states(online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")])), "in_sync", "rebuilding")
    a, b = v.legs
    t = _restarted_owner(v)
    t.controller(
        names.remote_controller(b.leg_id, 1), names.leg_nqn(b.leg_id, 1), address_of("n2"), uuid=identity_of(v, b)
    )
    vw = view("n1", [v], nodes=[node("n1", boot=1)])
    p = plan_node(vw, t.observed())
    assert staged(p) == [
        ("create", "bdev_error_create"),
        ("assemble", "bdev_raid_create"),
        ("trim", "bdev_raid_remove_base_bdev"),
    ]
    assert steps_of(p, "bdev_raid_create")[0].params["base_bdevs"] == [member(t, v, a), remote_bdev(b)]
    assert steps_of(p, "bdev_raid_remove_base_bdev")[0].params["name"] == remote_bdev(b)
    t.apply(p)
    p = plan_node(vw, t.observed())
    assert [(s.method, dict(s.params)) for s in p.steps] == [
        ("bdev_raid_add_base_bdev", {"raid_bdev": "vr-v1", "base_bdev": remote_bdev(b)})
    ]


def _cut_short(v: Volume) -> tuple[Target, NodeView]:
    """The owner of ``v`` (in-sync local leg, rebuilding remote leg) after a degraded start that
    ended before its trim (the agent was killed): the raid has the rebuilding leg as a member,
    and SPDK, which rebuilt nothing onto it, reads from it as from a copy."""
    a, b = v.legs
    t = _restarted_owner(v)
    t.controller(
        names.remote_controller(b.leg_id, 1), names.leg_nqn(b.leg_id, 1), address_of("n2"), uuid=identity_of(v, b)
    )
    vw = view("n1", [v], nodes=[node("n1", boot=1)])
    t.apply(Plan(tuple(s for s in plan_node(vw, t.observed()).steps if s.stage < Stage.TRIM)))
    assert t.raids["vr-v1"].members == [member(t, v, a), remote_bdev(b)] and t.raids["vr-v1"].target is None
    return t, vw


def test_placeholder_of_a_degraded_start_cut_short_is_removed_then_rebuilt() -> None:
    v = with_states(online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")])), "in_sync", "rebuilding")
    t, vw = _cut_short(v)
    p = plan_node(vw, t.observed())
    assert [(s.stage, s.method, s.params["name"]) for s in p.steps if s.method.startswith("bdev_raid")] == [
        (Stage.DISASSEMBLE, "bdev_raid_remove_base_bdev", remote_bdev(v.legs[1]))
    ]
    t.apply(p)
    p = plan_node(vw, t.observed())
    assert [(s.method, dict(s.params)) for s in p.steps] == [
        ("bdev_raid_add_base_bdev", {"raid_bdev": "vr-v1", "base_bdev": remote_bdev(v.legs[1])})
    ]


def test_member_this_node_rebuilt_stays_until_the_master_promotes_it() -> None:
    v = with_states(online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")])), "in_sync", "rebuilding")
    t, vw = _cut_short(v)
    rebuilt = replace(vw, added={"v1": frozenset({remote_bdev(v.legs[1])})})
    assert plan_node(rebuilt, t.observed()).steps == ()


def test_new_members_of_a_volume_being_created_stay() -> None:
    v = volume("v1", [leg("n1", "d1", "new"), leg("n1", "d2", "new")])
    t = settle(v)["n1"]
    assert plan_node(view("n1", [v]), t.observed()).steps == ()


def test_degraded_start_of_a_held_volume_uses_a_null_placeholder() -> None:
    v = with_states(online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")])), "in_sync", "rebuilding")
    b = v.legs[1]
    t = _restarted_owner(v)
    t.controller(
        names.remote_controller(b.leg_id, 1), names.leg_nqn(b.leg_id, 1), address_of("n2"), uuid=identity_of(v, b)
    )
    p = plan_node(view("n1", [v], nodes=[node("n1", boot=1)], held=["v1"]), t.observed())
    assert steps_of(p, "bdev_raid_create")[0].params["base_bdevs"][1] == f"{NULL_PREFIX}v1-0"
    assert not [s for s in p.steps if s.params.get("name") == remote_bdev(b) or s.params.get("base_bdev")]


def test_degraded_start_removes_placeholders_before_serving_or_releasing() -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1"), leg("n3", "d1")]))
    t = _restarted_owner(v)
    nodes = [node("n1", boot=1), node("n2", state="down"), node("n3", state="down")]
    t.held = None
    p = plan_node(view("n1", [v], nodes=nodes, exports=[export(v)]), t.observed())
    base = steps_of(p, "bdev_raid_create")[0].params["base_bdevs"]
    assert base[1:] == [f"{NULL_PREFIX}v1-0", f"{NULL_PREFIX}v1-1"]
    trims = [s for s in p.steps if s.stage == Stage.TRIM]
    assert [s.params["name"] for s in trims] == base[1:]
    exposing = [s for s in p.steps if s.stage in (Stage.SERVE, Stage.RELEASE)]
    assert exposing
    assert max(s.stage for s in trims) < min(s.stage for s in exposing)


def test_concat_volume_restarts_from_its_leg() -> None:
    v = online(volume("v1", [leg("n1", "d1")]))
    t = _restarted_owner(v)
    p = plan_node(view("n1", [v], nodes=[node("n1", boot=1)]), t.observed())
    assert staged(p) == [("create", "bdev_error_create"), ("assemble", "bdev_raid_create")]
    assert steps_of(p, "bdev_raid_create")[0].params["base_bdevs"] == [member(t, v, v.legs[0])]


def test_no_reachable_in_sync_leg_means_no_raid() -> None:
    v = with_states(online(volume("v1", [leg("n2", "d1"), leg("n1", "d1")])), "in_sync", "rebuilding")
    t = _restarted_owner(v)
    p = plan_node(view("n1", [v], nodes=[node("n2", state="down")], exports=[export(v)]), t.observed())
    assert findings(p) == [("leg_unreachable", v.legs[0].leg_id), ("no_source", "")]
    assert p.steps == ()


def test_raid_that_is_not_online_is_deleted_and_assembled_again() -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n1", "d2")]))
    t = settle(v)["n1"]
    t.raids["vr-v1"].state = "configuring"
    p = plan_node(view("n1", [v]), t.observed())
    assert staged(p)[:1] == [("disassemble", "bdev_raid_delete")]
    assert ("assemble", "bdev_raid_create") in staged(p)


# ---- holds --------------------------------------------------------------------------------------
def test_hold_is_injected_before_the_namespace_is_added() -> None:
    v = LOCAL2
    t = Target(node("n1")).lvstore("d1").lvstore("d2")
    p = plan_node(view("n1", [v], exports=[export(v)], held=["v1"]), t.observed())
    order = [s.method for _, ss in p.stages() for s in ss]
    assert order.index("bdev_error_inject_error") < order.index("nvmf_subsystem_add_ns")
    assert dict(steps_of(p, "bdev_error_inject_error")[0].params) == {
        "name": "EE_vr-v1",
        "io_type": "all",
        "error_type": "pending",
        "num": Options().hold_count,
    }
    assert not steps_of(p, "bdev_error_resume_pending")


@pytest.mark.parametrize(
    ("want", "observed_held", "expected"),
    [
        pytest.param(True, set(), ["bdev_error_inject_error"], id="hold"),
        pytest.param(True, {"v1"}, [], id="held-already"),
        pytest.param(True, None, ["bdev_error_inject_error"], id="hold-unknown-state"),
        pytest.param(True, {"v2"}, ["bdev_error_inject_error"], id="hold-other-held"),
        pytest.param(False, {"v1"}, ["bdev_error_resume_pending"], id="release"),
        pytest.param(False, set(), [], id="released-already"),
        pytest.param(False, None, ["bdev_error_resume_pending"], id="release-unknown-state"),
    ],
)
def test_hold_and_release(want: bool, observed_held: set[str] | None, expected: list[str]) -> None:
    v = online(LOCAL2)
    t = settle(v, exports=[export(v)])["n1"]
    t.held = observed_held
    vw = view("n1", [v], exports=[export(v)], held=["v1"] if want else [])
    p = plan_node(vw, t.observed())
    assert [s.method for s in p.steps] == expected
    assert all(s.params["name"] == "EE_vr-v1" for s in p.steps)
    t.apply(p)
    assert plan_node(vw, t.observed()) == Plan()


def test_new_raid_gets_no_release() -> None:
    v = online(volume("v1", [leg("n1", "d1")]))
    t = _restarted_owner(v)
    t.held = None
    p = plan_node(view("n1", [v], nodes=[node("n1", boot=1)]), t.observed())
    assert not steps_of(p, "bdev_error_resume_pending")


# ---- exports --------------------------------------------------------------------------------------
def test_export_hosts_and_access_follow_the_record() -> None:
    v = online(LOCAL2)
    t = settle(v, exports=[export(v)])["n1"]
    other = "nqn.2014-08.org.nvmexpress:uuid:" + fixed_uuid("host", "h2")
    p = plan_node(view("n1", [v], exports=[export(v, hosts=[other], allow_any_host=True)]), t.observed())
    nqn = names.volume_nqn("v1")
    assert {(s.method, json.dumps(dict(s.params), sort_keys=True)) for s in p.steps} == {
        ("nvmf_subsystem_add_host", json.dumps({"host": other, "nqn": nqn}, sort_keys=True)),
        ("nvmf_subsystem_remove_host", json.dumps({"host": HOST, "nqn": nqn}, sort_keys=True)),
        ("nvmf_subsystem_allow_any_host", json.dumps({"allow_any_host": True, "nqn": nqn}, sort_keys=True)),
    }
    assert {s.stage for s in p.steps} == {Stage.WIRE}


def test_export_under_its_own_nqn() -> None:
    v = online(LOCAL2)
    nqn = "nqn.2026-11.io.spdkvirt:custom:v1"
    t = settle(v, exports=[export(v, subnqn=nqn)])["n1"]
    assert set(t.subsystems) == {nqn}


# ---- garbage collection ---------------------------------------------------------------------------
FOREIGN_LEG = "abcdef012345.7"


def _leftovers(kind: str, t: Target) -> list[tuple[str, str, dict[str, Any]]]:
    """Put an object of ours that no volume wants on ``t``; the step that must remove it."""
    if kind == "leg-subsystem":
        nqn = names.leg_nqn(FOREIGN_LEG, 3)
        t.subsystem(nqn)
        return [("unexport", "nvmf_delete_subsystem", {"nqn": nqn})]
    if kind == "volume-subsystem":
        t.subsystem(names.volume_nqn("gone"))
        return [("unexport", "nvmf_delete_subsystem", {"nqn": names.volume_nqn("gone")})]
    if kind == "raid-and-hold":
        t.null("base0", 2048)
        t.raid("vr-gone", ["base0"], level="concat")
        t.error("vr-gone")
        return [
            ("unhold", "bdev_error_delete", {"name": "EE_vr-gone"}),
            ("disassemble", "bdev_raid_delete", {"name": "vr-gone"}),
        ]
    if kind == "placeholder":
        t.null(f"{NULL_PREFIX}gone-0", 2048)
        return [("detach", "bdev_null_delete", {"name": f"{NULL_PREFIX}gone-0"})]
    if kind == "controller":
        ctrl = names.remote_controller(FOREIGN_LEG, 2)
        t.controller(ctrl, names.leg_nqn(FOREIGN_LEG, 2), "127.0.0.9", uuid=fixed_uuid("x"))
        return [("detach", "bdev_nvme_detach_controller", {"name": ctrl})]
    assert kind == "lvol"
    t.lvol("lvs_d1", FOREIGN_LEG)
    return [("delete", "bdev_lvol_delete", {"name": f"lvs_d1/{FOREIGN_LEG}"})]


GARBAGE = ["leg-subsystem", "volume-subsystem", "raid-and-hold", "placeholder", "controller", "lvol"]


@pytest.mark.parametrize("kind", GARBAGE)
def test_objects_of_ours_nothing_wants_are_removed(kind: str) -> None:
    v = online(REMOTE2)
    t = settle(v, exports=[export(v)])["n1"]
    want = _leftovers(kind, t)
    p = plan_node(view("n1", [v], exports=[export(v)]), t.observed())
    assert keyed(p) == {(st, m, json.dumps(params, sort_keys=True)) for st, m, params in want}
    t.apply(p)
    assert plan_node(view("n1", [v], exports=[export(v)]), t.observed()) == Plan()


@pytest.mark.parametrize("kind", GARBAGE)
def test_nothing_is_collected_from_an_incomplete_view(kind: str) -> None:
    v = online(REMOTE2)
    t = settle(v, exports=[export(v)])["n1"]
    _leftovers(kind, t)
    assert plan_node(view("n1", [v], exports=[export(v)], complete=False), t.observed()) == Plan()


def test_objects_without_our_prefixes_are_never_touched() -> None:
    t = Target(node("n1")).lvstore("d1").lvstore("x", name="lvs0")
    t.null("Malloc0", 2048)
    t.null("Null0", 2048)
    t.raid("r1", ["Malloc0"])
    t.error("Null0")
    t.subsystem("nqn.2016-06.io.spdk:cnode1", bdev="Malloc0")
    t.controller("nvme0", "nqn.2016-06.io.spdk:leg1", "127.0.0.9", uuid=fixed_uuid("nvme0"))
    t.lvol("lvs0", FOREIGN_LEG)  # looks like a leg, but not on an lvstore of ours
    for name in ("scratch", "ABCDEF012345.1", "abcdef012345.x", "abcdef01234.1", "abcdef012345.1.snap"):
        t.lvol("lvs_d1", name)  # on ours, but not named like a leg
    assert plan_node(view("n1", []), t.observed()) == Plan()


def test_lvol_of_a_detached_copy_is_kept() -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    t = settle(v)["n2"]
    gone = replace(v, legs=v.legs[:1], detached=v.legs[1:], state="degraded", generation=2)
    p = plan_node(view("n2", [gone]), t.observed())
    assert not steps_of(p, "bdev_lvol_delete")
    disowned = replace(gone, detached=(), generation=3)
    assert steps_of(plan_node(view("n2", [disowned]), t.observed()), "bdev_lvol_delete")


def test_volume_moved_to_another_owner_is_taken_down_but_its_leg_kept() -> None:
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    t = settle(v, exports=[export(v)])["n1"]
    moved = replace(v, owner="n2")
    p = plan_node(view("n1", [moved]), t.observed())
    a = v.legs[0]
    assert {(st, m) for st, m in staged(p)} == {
        ("unexport", "nvmf_delete_subsystem"),
        ("unhold", "bdev_error_delete"),
        ("disassemble", "bdev_raid_delete"),
        ("detach", "bdev_nvme_detach_controller"),
        ("create", "nvmf_create_subsystem"),
        ("wire", "nvmf_subsystem_add_listener"),
        ("wire", "nvmf_subsystem_add_host"),
        ("wire", "nvmf_subsystem_add_ns"),
    }
    assert steps_of(p, "nvmf_create_subsystem")[0].params["nqn"] == names.leg_nqn(a.leg_id, 1)
    assert steps_of(p, "nvmf_subsystem_add_host")[0].params["host"] == names.node_nqn("n2")


def test_deleting_volume_is_taken_down_and_its_lvols_kept() -> None:
    v = online(LOCAL2)
    t = settle(v, exports=[export(v)])["n1"]
    p = plan_node(view("n1", [replace(v, state="deleting")]), t.observed())
    assert staged(p) == [
        ("unexport", "nvmf_delete_subsystem"),
        ("unhold", "bdev_error_delete"),
        ("disassemble", "bdev_raid_delete"),
    ]


def test_steps_say_when_they_are_already_done() -> None:
    v = REMOTE2
    p = plan_node(view("n1", [v], exports=[export(v)]), Target(node("n1")).lvstore("d1").observed())
    gc = online(REMOTE2)
    t = settle(gc)["n1"]
    _leftovers("lvol", t)
    q = plan_node(view("n1", [gc]), t.observed())
    assert {s.method: s.done_if for s in p.steps} == {
        "bdev_lvol_create": frozenset({"exists"}),
        "bdev_nvme_attach_controller": frozenset({"exists"}),
    }
    assert {s.method: s.done_if for s in q.steps} == {"bdev_lvol_delete": frozenset({"gone"})}


# ---- stories: the master remaps, the nodes converge -----------------------------------------------
def _nodes_converge(v: Volume, targets: dict[str, Target], nodes: list[Node]) -> list[dict[str, Plan]]:
    views = {n: view(n, [v], nodes=nodes, exports=[export(v)]) for n in sorted(targets)}
    return converge(views, targets)


def test_story_leg_node_restarts_and_its_leg_is_rebuilt() -> None:
    v = online(REMOTE2)
    b = v.legs[1]
    targets = settle(v, exports=[export(v)])
    # n2 restarts: its lvol is back, its export is not; n1 loses the namespace and SPDK drops the member
    n2 = node("n2", boot=2)
    targets["n2"] = Target(n2)
    targets["n2"].leg_lvol(v, b)
    targets["n1"].unplug(remote_bdev(b))
    targets["n1"].controllers[names.remote_controller(b.leg_id, 1)].state = "reconnect_is_delayed"
    nodes = [node("n1"), n2]
    assert findings(plan_node(view("n1", [v], nodes=nodes, exports=[export(v)]), targets["n1"].observed())) == [
        ("leg_dropped", b.leg_id)
    ]
    assert plan_node(view("n2", [v], nodes=nodes), targets["n2"].observed()) == Plan()
    # the master rebuilds the leg in place under a new incarnation
    world = cluster(nodes, [device("n1"), device("n2")])
    r = remap(v, world, Capacity.of(world.devices.values(), [v], world.usable_nodes()), {})
    assert r.reason == "node_added"
    v2 = r.volume
    b2 = v2.legs[1]
    assert (b2.state, b2.incarnation) == ("rebuilding", 2)
    _nodes_converge(v2, targets, nodes)
    raid = targets["n1"].raids["vr-v1"]
    assert raid.target == remote_bdev(b2)
    assert set(targets["n1"].controllers) == {names.remote_controller(b.leg_id, 2)}
    assert set(targets["n2"].subsystems) == {names.leg_nqn(b.leg_id, 2)}
    # the rebuild ends, the owner reports it, the master promotes: online, nothing left to do
    targets["n1"].finish_rebuilds()
    v3 = promote(v2, [b2.leg_id], v2.generation)
    assert v3.state == "online"
    assert len(_nodes_converge(v3, targets, nodes)) == 1


def test_story_owner_fails_and_the_volume_moves() -> None:
    v = online(REMOTE2)
    b = v.legs[1]
    targets = settle(v, exports=[export(v)])
    del targets["n1"]
    targets["n3"] = Target(node("n3")).lvstore("d1")
    nodes = [node("n1", state="down"), node("n2"), node("n3")]
    world = cluster(nodes, [device("n1"), device("n2"), device("n3")])
    r = remap(v, world, Capacity.of(world.devices.values(), [v], world.usable_nodes()), {})
    assert r.reason == "node_failed"
    v2 = r.volume
    assert v2.owner == "n2"
    c = v2.legs[1]
    assert (c.node, c.state) == ("n3", "rebuilding")
    history = _nodes_converge(v2, targets, nodes)
    first = history[0]["n2"]
    assert ("unexport", "nvmf_delete_subsystem") in staged(first)  # the export of b to n1
    assert steps_of(first, "bdev_raid_create")[0].params["base_bdevs"] == [
        member(targets["n2"], v2, b),
        f"{NULL_PREFIX}v1-0",
    ]
    owner = targets["n2"]
    assert owner.raids["vr-v1"].members == [member(owner, v2, b), remote_bdev(c)]
    assert owner.raids["vr-v1"].target == remote_bdev(c)
    assert [n.bdev for n in owner.subsystems[names.volume_nqn("v1")].namespaces] == ["EE_vr-v1"]
    owner.finish_rebuilds()
    v3 = promote(v2, [c.leg_id], v2.generation)
    assert v3.state == "online"
    assert len(_nodes_converge(v3, targets, nodes)) == 1


def test_legs_of_an_earlier_boot_of_the_owner_are_not_sources_until_renewed() -> None:
    """After a restart the owner's own legs are unproven: it builds nothing from them until the
    master gives them this boot (a new incarnation)."""
    v = online(volume("v1", [leg("n1", "d1"), leg("n2", "d1")]))
    t = _restarted_owner(v)
    p = plan_node(view("n1", [v], nodes=[node("n1", boot=2), node("n2", state="down")]), t.observed())
    assert ("leg_unproven", v.legs[0].leg_id) in findings(p)
    assert not steps_of(p, "bdev_raid_create")
