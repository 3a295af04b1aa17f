"""Observation: ``observe()`` over get-RPC results recorded from a real SPDK (tests/data/spdk-reference)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.model.observed import QUERIES, Member, NamespaceInfo, Observed, observe

REFERENCE = Path(__file__).resolve().parents[2] / "data" / "spdk-reference"
QUERY_METHODS = [m for m, _ in QUERIES]
ZERO_UUID = "00000000-0000-0000-0000-000000000000"


@cache
def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((REFERENCE / name).read_text())
    return doc


def answers(name: str) -> Iterator[tuple[str, str, Any]]:
    """(target, method, result) of every successful request, poll sample and poll companion of a file."""
    for s in _load(name)["steps"]:
        if "request" in s and "result" in s.get("response", {}):
            yield s.get("target", ""), s["request"]["method"], s["response"]["result"]
        if "poll" in s:
            for sample in s.get("samples", ()):
                if "result" in sample["response"]:
                    yield s.get("target", ""), s["poll"]["method"], sample["response"]["result"]
                for req, resp in zip(s.get("also") or (), sample.get("also") or (), strict=False):
                    if "result" in resp:
                        yield s.get("target", ""), req["method"], resp["result"]


def first(name: str, method: str, where: Callable[[Any], bool] = bool) -> Any:
    return next(r for _, m, r in answers(name) if m == method and where(r))


def _all_recorded() -> list[Any]:
    out = []
    for path in sorted(REFERENCE.glob("*.json")):
        for i, (_, method, result) in enumerate(answers(path.name)):
            if method in QUERY_METHODS:
                out.append(pytest.param(method, result, id=f"{path.stem}-{method}-{i}"))
    return out


@pytest.mark.parametrize(("method", "result"), _all_recorded())
def test_every_recorded_answer_parses(method: str, result: Any) -> None:
    obs = observe({method: result})
    got = {
        "bdev_get_bdevs": obs.bdevs,
        "bdev_raid_get_bdevs": obs.raids,
        "bdev_lvol_get_lvstores": obs.lvstores,
        "bdev_nvme_get_controllers": obs.controllers,
        "nvmf_get_subsystems": obs.subsystems,
        "iscsi_get_target_nodes": obs.iscsi.targets,
        "iscsi_get_portal_groups": obs.iscsi.portal_groups,
        "iscsi_get_initiator_groups": obs.iscsi.initiator_groups,
        "iscsi_get_auth_groups": obs.iscsi.auth_groups,
    }[method]
    assert len(got) == len({x.get("name") or x.get("nqn") or x.get("tag") for x in result})


def test_raid_with_an_empty_slot() -> None:
    result = first(
        "raid1_degrade_rebuild.json",
        "bdev_raid_get_bdevs",
        lambda r: any(not m["is_configured"] for x in r for m in x["base_bdevs_list"]),
    )
    raid = observe({"bdev_raid_get_bdevs": result}).raids["r1"]
    assert (raid.state, raid.level, raid.rebuild_target, raid.rebuild_percent) == ("online", "raid1", None, 0)
    assert raid.members[1] == Member(1, None, ZERO_UUID, False)
    assert raid.configured() == ("M0",)


def test_raid_being_rebuilt() -> None:
    result = first("raid1_degrade_rebuild.json", "bdev_raid_get_bdevs", lambda r: any("process" in x for x in r))
    recorded = next(x for x in result if "process" in x)
    raid = observe({"bdev_raid_get_bdevs": result}).raids[recorded["name"]]
    assert raid.rebuild_target == recorded["process"]["target"]
    assert raid.rebuild_percent == recorded["process"]["progress"]["percent"]
    assert raid.rebuild_target in raid.configured()


def test_raid_waiting_for_a_member() -> None:
    result = first("raid_levels.json", "bdev_raid_get_bdevs", lambda r: any(x["state"] == "configuring" for x in r))
    raid = observe({"bdev_raid_get_bdevs": result}).raids["rcfg"]
    assert raid.state == "configuring"
    assert [(m.name, m.configured) for m in raid.members] == [("M8", True), ("Later", False)]
    assert raid.configured() == ("M8",)


def test_lvol_is_found_by_its_alias_and_its_uuid() -> None:
    bdevs = first(
        "lvol_lifecycle.json",
        "bdev_get_bdevs",
        lambda r: any(b["product_name"] == "Logical Volume" for b in r),
    )
    obs = observe({"bdev_get_bdevs": bdevs})
    lvol = next(b for b in bdevs if b["product_name"] == "Logical Volume")
    alias = lvol["aliases"][0]
    lvstore, _, name = alias.partition("/")
    found = obs.find(alias)
    assert found is not None
    assert (found.name, found.uuid, found.product) == (lvol["uuid"], lvol["uuid"], "Logical Volume")
    assert obs.find(lvol["name"]) is found
    assert obs.lvols(lvstore)[name] is found
    assert obs.find(lvstore + "/nope") is None
    assert obs.lvols("nope") == {}


def test_claimed_bdev() -> None:
    bdevs = first("lvol_lifecycle.json", "bdev_get_bdevs", lambda r: any(b["name"] == "Malloc0" for b in r))
    obs = observe({"bdev_get_bdevs": bdevs})
    assert obs.bdevs["Malloc0"].claimed
    assert obs.bdevs["Malloc0"].block_size == 512


def test_lvstores() -> None:
    result = first("lvol_lifecycle.json", "bdev_lvol_get_lvstores")
    recorded = result[0]
    lvs = observe({"bdev_lvol_get_lvstores": result}).lvstores[recorded["name"]]
    assert (lvs.uuid, lvs.base_bdev, lvs.cluster_size) == (
        recorded["uuid"],
        recorded["base_bdev"],
        recorded["cluster_size"],
    )
    assert (lvs.free_clusters, lvs.total_clusters) == (recorded["free_clusters"], recorded["total_data_clusters"])


def test_remote_namespace_bdev_has_its_uuid_as_alias() -> None:
    bdevs = first("remote_leg.json", "bdev_get_bdevs", lambda r: any(b["product_name"] == "NVMe disk" for b in r))
    obs = observe({"bdev_get_bdevs": bdevs})
    nvme = obs.bdevs["nvme0n1"]
    assert nvme.aliases == (nvme.uuid,)
    assert obs.find(nvme.uuid) is nvme


@pytest.mark.parametrize("state", ["enabled", "reconnect_is_delayed"])
def test_controllers(state: str) -> None:
    result = first(
        "remote_leg.json", "bdev_nvme_get_controllers", lambda r: bool(r) and r[0]["ctrlrs"][0]["state"] == state
    )
    ctrl = observe({"bdev_nvme_get_controllers": result}).controllers["nvme0"]
    assert (ctrl.state, ctrl.subnqn, ctrl.traddr, ctrl.trsvcid) == (
        state,
        "nqn.2016-06.io.spdk:leg1",
        "127.0.0.1",
        "4430",
    )


def test_controller_without_paths() -> None:
    ctrl = observe({"bdev_nvme_get_controllers": [{"name": "x", "ctrlrs": []}]}).controllers["x"]
    assert (ctrl.state, ctrl.subnqn, ctrl.traddr) == ("", "", "")


def test_subsystems() -> None:
    result = first("nvmf_export.json", "nvmf_get_subsystems", lambda r: len(r) > 2)
    subs = observe({"nvmf_get_subsystems": result}).subsystems
    discovery = subs["nqn.2014-08.org.nvmexpress.discovery"]
    assert (discovery.namespaces, discovery.listeners, discovery.hosts, discovery.allow_any_host) == ((), (), (), True)
    recorded = next(s for s in result if s["nqn"] == "nqn.2016-06.io.spdk:cnode1")
    cnode1 = subs["nqn.2016-06.io.spdk:cnode1"]
    assert cnode1.namespaces == tuple(
        NamespaceInfo(n["nsid"], n["bdev_name"], n["uuid"]) for n in recorded["namespaces"]
    )
    assert cnode1.listeners == tuple((x["traddr"], x["trsvcid"]) for x in recorded["listen_addresses"])
    assert cnode1.hosts == tuple(h["nqn"] for h in recorded["hosts"])
    assert cnode1.allow_any_host is recorded["allow_any_host"]


def test_nothing_observed() -> None:
    assert observe({}) == Observed()
    assert observe(dict.fromkeys(QUERY_METHODS)) == Observed()


@pytest.mark.parametrize("held", [None, frozenset(), frozenset({"v1"})], ids=["unknown", "none", "one"])
def test_held_volumes_pass_through(held: frozenset[str] | None) -> None:
    assert observe({}, held).held == held


def test_queries_ask_for_every_raid() -> None:
    assert dict(QUERIES)["bdev_raid_get_bdevs"] == {"category": "all"}
    assert sorted(QUERY_METHODS) == [
        "bdev_get_bdevs",
        "bdev_lvol_get_lvstores",
        "bdev_nvme_get_controllers",
        "bdev_raid_get_bdevs",
        "iscsi_get_auth_groups",
        "iscsi_get_initiator_groups",
        "iscsi_get_portal_groups",
        "iscsi_get_target_nodes",
        "nvmf_get_subsystems",
    ]
