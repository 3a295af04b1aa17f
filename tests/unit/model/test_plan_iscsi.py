"""The node planner for iSCSI exports: the LUN opens a passthru over the hold, never the hold.

SPDK's error bdev (the hold) frees the buffer of a read that came without one before the iSCSI
layer has sent the data; a passthru over it owns that buffer (see ``names.lun``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from spdkvirt.model import names
from spdkvirt.model.observed import Observed, observe
from spdkvirt.model.plan import plan_node
from spdkvirt.model.records import Export, Volume
from spdkvirt.model.status import volume_status
from spdkvirt.model.steps import Plan, Stage
from tests.unit.model.builders import Target, leg, settle, view, volume

TAG = 1001
IQN = names.volume_iqn("v1")


def online(v: Volume) -> Volume:
    return replace(v, state="online", legs=tuple(replace(x, state="in_sync") for x in v.legs))


V1 = online(volume("v1", [leg("n1", "d1", "new"), leg("n1", "d2", "new")]))


def iscsi_export(v: Volume) -> Export:
    return Export.of({
        "kind": "export", "schema_version": 1, "volume": v.name, "export_id": "iscsi0", "protocol": "iscsi",
        "node": v.owner, "state": "active", "generation": 1,
        "iscsi": {"target_name": names.volume_iqn(v.name), "initiator_group": TAG, "initiators": ["ANY"],
                  "netmasks": ["ANY"]},
    })  # fmt: skip


UUID0 = "00000000-0000-4000-8000-000000000000"
UUID1 = "11111111-0000-4000-8000-000000000000"
PORTALS = [{"tag": names.PORTAL_GROUP, "portals": [{"host": "10.0.0.1", "port": "3260"}]}]


def served(t: Target, *, lun_bdev: str | None, passthru: bool) -> Observed:
    """What the owner's SPDK reports with the volume assembled and held under its hold, plus a
    passthru over the hold (or not) and a target node whose LUN 0 is ``lun_bdev`` (or none)."""
    results: dict[str, Any] = t.results()
    hold = names.hold("v1")
    bdevs = list(results["bdev_get_bdevs"])
    if not any(b["name"] == hold for b in bdevs):
        bdevs.append({"name": hold, "aliases": [], "product_name": "Error Injection Disk", "block_size": 512,
                      "num_blocks": 131072, "uuid": UUID0, "claimed": passthru})  # fmt: skip
    if passthru:
        bdevs.append({"name": names.lun("v1"), "aliases": [], "product_name": "passthru", "block_size": 512,
                      "num_blocks": 131072, "uuid": UUID1, "claimed": False})  # fmt: skip
    results["bdev_get_bdevs"] = bdevs
    results["iscsi_get_portal_groups"] = PORTALS
    results["iscsi_get_initiator_groups"] = [{"tag": TAG, "initiators": ["ANY"], "netmasks": ["ANY"]}]
    results["iscsi_get_auth_groups"] = []
    luns = [{"bdev_name": lun_bdev, "lun_id": 0}] if lun_bdev else []
    results["iscsi_get_target_nodes"] = [{"name": IQN, "luns": luns, "pg_ig_maps": [{"pg_tag": 1000, "ig_tag": TAG}]}]
    return observe(results, frozenset())


def plan_for(obs: Observed, exports: tuple[Export, ...] = (iscsi_export(V1),)) -> Plan:
    return plan_node(view("n1", [V1], exports=exports), obs)


def calls(p: Plan, *methods: str) -> list[tuple[Stage, str, dict[str, Any]]]:
    """The steps of these methods in the order they run (by stage, then as planned)."""
    return [(s.stage, s.method, dict(s.params)) for s in sorted(p.steps, key=lambda s: s.stage) if s.method in methods]


@pytest.fixture
def owner() -> Target:
    return settle(V1)["n1"]


def test_new_iscsi_export_puts_a_passthru_over_the_hold_and_the_lun_on_it() -> None:
    t = settle(V1)["n1"]
    p = plan_node(view("n1", [V1], exports=[iscsi_export(V1)]), t.observed())
    [(stage, _, params)] = calls(p, "bdev_passthru_create")
    assert stage == Stage.CREATE
    assert params == {"base_bdev_name": names.hold("v1"), "name": names.lun("v1")}
    [(stage, _, target)] = calls(p, "iscsi_create_target_node")
    assert stage == Stage.SERVE
    assert target["luns"] == [{"bdev_name": names.lun("v1"), "lun_id": 0}]


def test_served_iscsi_export_plans_nothing(owner: Target) -> None:
    p = plan_for(served(owner, lun_bdev=names.lun("v1"), passthru=True))
    assert not calls(p, "bdev_passthru_create", "bdev_passthru_delete", "iscsi_create_target_node",
                     "iscsi_delete_target_node", "iscsi_target_node_add_lun")  # fmt: skip


def test_missing_passthru_is_made_again(owner: Target) -> None:
    p = plan_for(served(owner, lun_bdev=None, passthru=False))
    assert [m for _, m, _ in calls(p, "bdev_passthru_create", "iscsi_target_node_add_lun")] == [
        "bdev_passthru_create", "iscsi_target_node_add_lun",
    ]  # fmt: skip
    [(_, _, add)] = calls(p, "iscsi_target_node_add_lun")
    assert add["bdev_name"] == names.lun("v1")


def test_target_with_its_lun_on_the_hold_is_made_again_over_the_passthru(owner: Target) -> None:
    p = plan_for(served(owner, lun_bdev=names.hold("v1"), passthru=False))
    got = calls(p, "iscsi_delete_target_node", "bdev_passthru_create", "iscsi_create_target_node")
    assert [(s, m) for s, m, _ in got] == [
        (Stage.UNEXPORT, "iscsi_delete_target_node"),
        (Stage.CREATE, "bdev_passthru_create"),
        (Stage.SERVE, "iscsi_create_target_node"),
    ]
    assert got[2][2]["luns"] == [{"bdev_name": names.lun("v1"), "lun_id": 0}]


def test_passthru_of_a_volume_without_iscsi_export_goes_before_nvmf_needs_the_hold(owner: Target) -> None:
    p = plan_for(served(owner, lun_bdev=None, passthru=True), exports=())
    assert calls(p, "bdev_passthru_delete") == [(Stage.UNHOLD, "bdev_passthru_delete", {"name": names.lun("v1")})]


def test_passthru_goes_before_the_hold_of_a_volume_gone_from_the_node(owner: Target) -> None:
    obs = served(owner, lun_bdev=names.lun("v1"), passthru=True)
    p = plan_node(view("n1", []), obs)
    assert [m for _, m, _ in calls(p, "bdev_passthru_delete", "bdev_error_delete")] == [
        "bdev_passthru_delete", "bdev_error_delete",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("lun_bdev", "passthru", "exported"),
    [(names.lun("v1"), True, True), (None, True, False), (None, False, False)],
)
def test_status_says_exported_only_when_a_lun_serves_the_volume(
    owner: Target, lun_bdev: str | None, passthru: bool, exported: bool
) -> None:
    obs = served(owner, lun_bdev=lun_bdev, passthru=passthru)
    assert volume_status(V1, obs, "n1", (), False, 1)["exported"] is exported
