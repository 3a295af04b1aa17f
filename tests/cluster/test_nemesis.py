"""Seeded fault schedules on a cluster of processes, a network namespace per node and etcd of 3
members: partitions, cuts from etcd and between an owner and a leg node, etcd member kills, besides
what tests/nemesis runs on a local cluster. SPDKVIRT_NEMESIS_SEEDS (``17``, ``1-5``) picks seeds."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cluster.cluster_ops import Ops
from tests.cluster.harness import Cluster, MiB
from tests.nemesis.cluster import run_schedule
from tests.nemesis.test_nemesis import seeds

pytestmark = [pytest.mark.etcd, pytest.mark.slow]


@pytest.mark.parametrize("seed", seeds("1-2"))
async def test_fault_schedule_with_partitions_keeps_every_acknowledged_write(
    cluster: Callable[..., Cluster], seed: int
) -> None:
    c = cluster(nodes=("n1", "n2", "n3"), devices=2, device_size=256 * MiB, poll_ms=2, etcd_members=3)
    ops = Ops(c)
    try:
        r = await run_schedule(ops, seed, faults=4)
    finally:
        await ops.close_store()
        ops.close()
    print(r.show())
    assert r.verdict.ok, r.show()
