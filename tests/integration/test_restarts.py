"""Node restarts on a local cluster (one process, simulators, embedded store).

SPDK keeps nothing across a restart. When a node's SPDK restarts under its agent, the agent
registers again as a new boot (its aio devices come back with the uuids the database keeps, and
their lvstores and lvols load); the master treats every leg there as new until proven otherwise
(a new incarnation, rebuilt from an in-sync copy) and the owners rebuild their raids from the
database. A node that died and comes back finds its volumes gone elsewhere; its old lvols are
deleted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spdkvirt.api.client import ApiClient
from spdkvirt.local import LocalCluster
from spdkvirt.model import names
from spdkvirt.model.records import Volume
from spdkvirt.spdk.client import SpdkClient
from spdkvirt.store import keys
from tests.integration.waiting import until

VOLUMES = 4


@pytest.fixture
async def cluster(tmp_path: Path, target: tuple[str, ...]) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(tmp_path / "c", nodes=3, devices=2, device_size=256 << 20, target=target) as c:
        await c.wait_ready()
        api = ApiClient(f"unix://{c.api_socket}")
        try:
            for i in range(VOLUMES):
                await api.call("volume_create", {"name": f"v{i}", "size_bytes": 16 << 20, "redundancy": 2})
        finally:
            await api.close()
        await until(lambda: all_healthy(c), what="volumes healthy")
        yield c


async def volumes(c: LocalCluster) -> dict[str, Volume]:
    assert c.store is not None
    return {kv.value["name"]: Volume.of(kv.value) for kv in (await c.store.range(keys.prefix("volume"))).kvs}


async def all_healthy(c: LocalCluster) -> bool:
    vols = await volumes(c)
    assert c.store is not None
    epochs = [kv.value for kv in (await c.store.range(keys.prefix("epoch"))).kvs]
    return all(v.state == "online" for v in vols.values()) and all(e["phase"] == "done" for e in epochs)


async def raid_members(c: LocalCluster, node: str) -> dict[str, int]:
    async with SpdkClient(c.node(node).socket) as spdk:
        raids = await spdk.call("bdev_raid_get_bdevs", {"category": "online"})
    return {r["name"]: r["num_base_bdevs_discovered"] for r in raids}


async def test_spdk_restart_under_a_running_agent_rebuilds_its_legs(cluster: LocalCluster) -> None:
    before = await volumes(cluster)
    on_n2 = {v.name: [leg.leg_id for leg in v.legs if leg.node == "n2"] for v in before.values()}
    n2 = cluster.node("n2")
    assert n2.process is not None and cluster.store is not None
    store = cluster.store
    old_boot = (await store.get(keys.node("n2"))).value["boot_id"]  # type: ignore[union-attr]
    n2.process.kill()
    n2.process.start()
    await n2.process.ready()

    async def new_boot() -> bool:
        kv = await store.get(keys.node("n2"))
        return kv is not None and kv.value.get("boot_id") != old_boot

    await until(new_boot, 30, "the agent registers the new boot")
    await until(lambda: remapped(cluster, on_n2, before), 30, "legs of n2 in new incarnations")
    await until(lambda: all_healthy(cluster), 90, "healthy again after the restart")
    after = await volumes(cluster)
    for name, legs in on_n2.items():
        for leg_id in legs:
            leg = after[name].leg(leg_id)
            if leg is not None:  # kept in place: it must be a new incarnation, rebuilt or re-exported
                assert leg.incarnation > before[name].leg(leg_id).incarnation  # type: ignore[union-attr]
    for v in after.values():
        members = await raid_members(cluster, v.owner)
        assert members.get(names.raid(v.name)) == 2, f"{v.name} on {v.owner}: {members}"


async def test_a_dead_node_that_returns_gets_its_stale_lvols_deleted(cluster: LocalCluster) -> None:
    before = await volumes(cluster)
    stale = {leg.leg_id for v in before.values() for leg in v.legs if leg.node == "n3"}
    assert stale
    await cluster.kill_node("n3")
    await until(lambda: moved_off(cluster, "n3"), 60, "volumes moved off n3")
    await until(lambda: all_healthy(cluster), 90, "healthy without n3")
    await cluster.restart_node("n3")

    async def lvols_gone() -> bool:
        async with SpdkClient(cluster.node("n3").socket) as spdk:
            lvols = await spdk.call("bdev_lvol_get_lvols")
        mapped = {leg.leg_id for v in (await volumes(cluster)).values() for leg in v.legs if leg.node == "n3"}
        return not ({lv["name"] for lv in lvols} & (stale - mapped))

    await until(lvols_gone, 60, "old lvols of n3 deleted")
    for v in (await volumes(cluster)).values():
        assert all(leg.state == "in_sync" for leg in v.legs)


async def remapped(c: LocalCluster, on_node: dict[str, list[str]], before: dict[str, Volume]) -> bool:
    after = await volumes(c)
    for name, legs in on_node.items():
        for leg_id in legs:
            leg, old = after[name].leg(leg_id), before[name].leg(leg_id)
            if leg is not None and old is not None and leg.incarnation == old.incarnation:
                return False
    return True


async def moved_off(c: LocalCluster, node: str) -> bool:
    return all(node not in v.nodes() for v in (await volumes(c)).values())
