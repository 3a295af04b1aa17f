"""Window 1: an owner moves off a down node only once that node is out of the way.

A node the master declared down for missing a deadline (expelled) still holds its lease, and its
SPDK may still serve: its volumes get no other owner until its liveness is gone (lease expired or
revoked) or it is fenced out of band. The master runs in-process over a file store holding the
records a cluster would.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from spdkvirt.controller.master import Master, MasterConfig, parsers
from spdkvirt.mirror import Mirror
from spdkvirt.store import Store, keys
from tests.integration.conftest import alive
from tests.unit.model.builders import device, leg, node, volume

NODES = ("n1", "n2", "n3")


@pytest.mark.parametrize(
    ("lease_live", "fenced", "moves"),
    [
        (True, False, False),  # expelled, lease live, not fenced: may still serve: stays
        (False, False, True),  # its liveness is gone: moves
        (True, True, True),  # fenced out of band for its registration: moves
    ],
)
async def test_owner_moves_off_a_down_node_only_once_it_is_out_of_the_way(
    store: Store, lease_live: bool, fenced: bool, moves: bool
) -> None:
    lease = await store.grant_lease(30)
    for n in NODES:
        rec = node(n).record()
        if n == "n1":
            rec = replace(node(n), state="down", generation=2).record() | {"reason": "expelled: missed a deadline"}
            if fenced:
                rec["fence_status"] = {"ok": True, "at": "2026-12-04T00:00:00Z", "method": "stop", "detail": "",
                                       "epoch": 1, "generation": 2}  # fmt: skip
        await store.put(keys.node(n), rec)
        await store.put(keys.device(n, "d1"), device(n).record())
        if n != "n1" or lease_live:
            await store.put(keys.alive(n), alive(n), lease=lease)
    v = volume("v1", [leg("n1"), leg("n2")], owner="n1", redundancy=2)
    await store.put(keys.volume("v1"), v.record())

    master = Master(store, MasterConfig("test"))
    master.mirror = mirror = Mirror(store, parsers())
    mirror.start()
    try:
        await asyncio.wait_for(mirror.synced.wait(), 10)
        [r] = master.remaps(["v1"])
        if moves:
            assert r.changed and r.volume.owner != "n1" and "n1" not in r.volume.nodes(), r.volume
        else:
            assert not r.changed and r.volume == v  # waits as it is: never served twice
    finally:
        await mirror.close()
        await lease.revoke()
