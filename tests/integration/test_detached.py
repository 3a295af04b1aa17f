"""Window 4: an in-sync copy that leaves the mapping while out of reach is kept until the volume
has its redundancy back; nothing deletes it before the master disowns it.

Two nodes with one small device each: a volume's copy on each, room for no third. The node of the
copy that is not the owner's dies: its copy leaves the mapping (detached) and no new one fits. When
the node returns, its copy must still be there; when the owner dies too, that copy is all that is
left of the volume, which is failed, waiting, not deleted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spdkvirt.agent.agent import Agent
from spdkvirt.api.client import ApiClient
from spdkvirt.local import LocalCluster
from spdkvirt.spdk.client import SpdkClient
from spdkvirt.store import keys
from tests.integration.test_restarts import all_healthy, volumes
from tests.integration.waiting import until

SIZE = 40 << 20


@pytest.fixture
async def cluster(tmp_path: Path, target: tuple[str, ...]) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(tmp_path / "c", nodes=2, devices=1, device_size=64 << 20, target=target) as c:
        await c.wait_ready()
        api = ApiClient(f"unix://{c.api_socket}")
        try:
            await api.call("volume_create", {"name": "v1", "size_bytes": SIZE, "redundancy": 2, "thin": False})
        finally:
            await api.close()
        await until(lambda: all_healthy(c), 60, what="volume healthy")
        yield c


async def lvols(c: LocalCluster, node: str) -> dict[str, str]:
    """Lvol name -> uuid on ``node``."""
    async with SpdkClient(c.node(node).socket) as spdk:
        return {lv["name"]: lv["uuid"] for lv in await spdk.call("bdev_lvol_get_lvols")}


async def test_copy_of_a_node_that_died_is_kept_until_redundancy_is_back(cluster: LocalCluster) -> None:
    assert cluster.store is not None
    store = cluster.store
    v = (await volumes(cluster))["v1"]
    [copy] = [x for x in v.legs if x.node != v.owner]
    kept = (await lvols(cluster, copy.node))[copy.leg_id]
    await cluster.kill_node(copy.node)

    async def left() -> bool:
        return (await volumes(cluster))["v1"].leg(copy.leg_id) is None

    await until(left, 30, "the copy leaves the mapping")
    boot = (await store.get(keys.node(copy.node))).value["boot_id"]  # type: ignore[union-attr]
    await cluster.restart_node(copy.node)

    async def registered() -> bool:
        kv = await store.get(keys.node(copy.node))
        return kv is not None and kv.value["state"] == "up" and kv.value["boot_id"] != boot

    await until(registered, 30, "the node registers again")
    agent = cluster.node(copy.node).agent
    assert agent is not None
    await passes_of(agent, 3)
    assert (await lvols(cluster, copy.node)).get(copy.leg_id) == kept, "the detached copy was deleted"
    record = (await store.get(keys.volume("v1"))).value  # type: ignore[union-attr]
    assert record["state"] == "degraded"
    assert [x["leg_id"] for x in record["detached"]] == [copy.leg_id]

    await cluster.kill_node(v.owner)

    async def failed() -> bool:
        return (await volumes(cluster))["v1"].state == "failed"

    await until(failed, 30, "the volume fails with its last in-sync copy")
    await passes_of(agent, 3)
    assert (await lvols(cluster, copy.node)).get(copy.leg_id) == kept


async def passes_of(agent: Agent, count: int) -> None:
    start = agent.passes

    async def done() -> bool:
        return agent.passes >= start + count

    await until(done, 30, f"{count} reconcile passes of {agent.me}")
