"""Unsafe windows of the epoch protocol, each provoked on a running cluster (processes in their
own namespaces, etcd), with the data written before checked after.

Window 7: one volume its owner cannot hold must not fence a healthy node: acknowledgements and
failures are per volume; the volume leaves the epoch and is remapped in a later one.
"""

from __future__ import annotations

import time

import pytest

from tests.cluster.cluster_ops import Ops
from tests.cluster.test_failover import NODES, SETTLE, Factory, running

pytestmark = [pytest.mark.etcd, pytest.mark.slow]


async def test_one_volume_that_cannot_be_held_does_not_fence_its_node(cluster: Factory) -> None:
    async with running(cluster) as ops:
        if ops.c.real_spdk is not None:
            pytest.skip("injects an RPC error: the simulator's fault injection")
        await one_bad_volume(ops)


async def one_bad_volume(ops: Ops) -> None:
    before = await ops.state()
    # the device whose failure touches the most volumes owned by one node: that node must hold them
    counts: dict[tuple[str, str, str], int] = {}
    for node, device in before.devices:
        for name in before.legs_on(node, device):
            owner = before.volumes[name].owner
            if owner != node:
                counts[(node, device, owner)] = counts.get((node, device, owner), 0) + 1
    node, device, owner = max(counts, key=lambda k: (counts[k], k))
    assert counts[(node, device, owner)] >= 2, counts
    owner_gen = before.nodes[owner]["generation"]
    # the owner's next hold fails, for one volume only
    await ops.spdk_call(owner, "sim_rpc_error", {"method": "bdev_error_inject_error", "code": -5, "count": 1})
    started = time.monotonic()
    await ops.fail_device(node, device)

    async def problems() -> list[str]:
        st = await ops.state()
        out = [f"{v}: still on {node}/{device}" for v in st.legs_on(node, device)]
        out += [f"epoch {e['number']} is {e['phase']}" for e in st.open_epochs()]
        return out + await ops.redundancy_problems(NODES)

    await ops.settled(problems, within=SETTLE, what=f"volumes off {node}/{device}, one refusing its first hold")
    print(f"timing: one hold refused: repaired in {time.monotonic() - started:.2f} s")
    after = await ops.state()
    epochs = [e for e in after.epochs if e["number"] > before.last_epoch]
    assert not [e for e in epochs if e.get("expelled") or e.get("fenced")], [
        (e["number"], e.get("expelled")) for e in epochs
    ]
    assert after.nodes[owner]["state"] == "up" and after.nodes[owner]["generation"] == owner_gen, after.nodes[owner]
    failed = {v: why for e in epochs for v, why in e.get("failed", {}).items()}
    assert len(failed) == 1 and "bdev_error_inject_error" in next(iter(failed.values())), failed
    assert not await ops.pattern_problems()
