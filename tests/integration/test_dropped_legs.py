"""Window 10: a leg its owner saw drop out of its raid missed writes, before the database says so.

The owner reports the leg (``leg_dropped``) and the master waits a short grace before rebuilding it,
so that one epoch can move it off a device that failed. If the owner dies meanwhile, the database
still calls that leg in sync: it must not become the volume's source, nor a member of a raid made
elsewhere as a copy. The master runs in-process over a file store holding the records a cluster would.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from spdkvirt.controller.master import SUSPECT_GRACE, Master, MasterConfig, parsers
from spdkvirt.mirror import Mirror
from spdkvirt.model.records import Volume
from spdkvirt.store import Store, keys
from tests.integration.conftest import alive
from tests.unit.model.builders import device, leg, node, volume


def status(v: Volume, dropped: str) -> dict[str, object]:
    """The last status the owner wrote: every leg in the raid but ``dropped``."""
    return {"kind": "status", "schema_version": 1, "volume": v.name, "node": v.owner, "generation": v.generation,
            "raid_state": "online", "in_sync": sorted(x.leg_id for x in v.legs if x.leg_id != dropped),
            "held": False, "exported": True, "at": "2026-12-04T00:00:00Z",
            "findings": [{"volume": v.name, "kind": "leg_dropped", "leg": dropped,
                          "detail": "in-sync leg is not a member of the raid"}]}  # fmt: skip


async def remap_after_owner_death(store: Store, v: Volume, dropped: str, wait: float) -> Volume:
    """``v``'s next mapping once its owner n1 is dead (lease gone), its last status having said
    ``dropped`` left the raid ``wait`` seconds before."""
    lease = await store.grant_lease(30)
    for n in ("n1", "n2", "n3"):
        rec = node(n).record() if n != "n1" else replace(node(n), state="down", generation=2).record()
        await store.put(keys.node(n), rec)
        await store.put(keys.device(n, "d1"), device(n).record())
        if n != "n1":
            await store.put(keys.alive(n), alive(n), lease=lease)
    await store.put(keys.volume(v.name), v.record())
    await store.put(keys.status(v.name), status(v, dropped))
    master = Master(store, MasterConfig("test"))
    master.mirror = mirror = Mirror(store, parsers())
    mirror.start()
    try:
        await asyncio.wait_for(mirror.synced.wait(), 10)
        master.remaps([v.name])
        await asyncio.sleep(wait)
        [r] = master.remaps([v.name])
        return r.volume
    finally:
        await mirror.close()
        await lease.revoke()


@pytest.mark.parametrize("wait", [0.0, SUSPECT_GRACE + 0.1], ids=["within-grace", "after-grace"])
async def test_leg_dropped_before_the_owner_died_is_no_source(store: Store, wait: float) -> None:
    v = volume("v1", [leg("n1"), leg("n2")], owner="n1", redundancy=2)
    b = v.legs[1]
    nxt = await remap_after_owner_death(store, v, b.leg_id, wait)
    # only the dead owner's own leg has every acknowledged write: the volume waits for it
    assert nxt.state == "failed", nxt
    assert nxt.legs == v.legs and nxt.owner == "n1"


@pytest.mark.parametrize("wait", [0.0, SUSPECT_GRACE + 0.1], ids=["within-grace", "after-grace"])
async def test_leg_dropped_before_the_owner_died_is_rebuilt_by_the_new_owner(store: Store, wait: float) -> None:
    v = volume("v1", [leg("n1"), leg("n2"), leg("n3")], owner="n1", redundancy=3)
    _, b, c = v.legs
    nxt = await remap_after_owner_death(store, v, b.leg_id, wait)
    state = {x.leg_id: x.state for x in nxt.legs}
    assert nxt.owner == "n3" and state[c.leg_id] == "in_sync", nxt
    assert state[b.leg_id] == "rebuilding", nxt  # never assembled as a copy
