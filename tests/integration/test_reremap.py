"""Window 8: after a re-remap inside an epoch, answers for the earlier mapping do not count.

The master runs over a file store; the test plays the nodes, writing their acknowledgements as
their agents would. A device fails, the epoch quiesces and writes the volume's new mapping; before
the nodes have applied it, a second device fails and the mapping is written again. Answers that
do not say they applied the newest mapping must not move the epoch on: the nodes would resume
host I/O on a mapping they do not hold yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import Any

from spdkvirt.controller.master import Master, MasterConfig
from spdkvirt.model.records import Volume
from spdkvirt.store import Store, keys
from tests.integration.conftest import alive
from tests.unit.model.builders import device, leg, node, volume

NODES = ("n1", "n2", "n3")


async def epoch(store: Store) -> dict[str, Any] | None:
    r = await store.range(keys.prefix("epoch"))
    return r.kvs[-1].value if r.kvs else None


async def until_phase(store: Store, phase: str, within: float = 10.0) -> dict[str, Any]:
    end = time.monotonic() + within
    while True:
        e = await epoch(store)
        if e is not None and e["phase"] == phase:
            return e
        assert time.monotonic() < end, f"epoch not {phase}: {e}"
        await asyncio.sleep(0.02)


async def answer(store: Store, e: dict[str, Any], applied: int | dict[str, int] = 0) -> None:
    """Every node of ``e`` answers its phase for v1 (or the volumes ``applied`` names);
    ``applied``: the mapping generation it says it holds (0: it says none, as an answer made before
    the newest mapping would)."""
    held = applied if isinstance(applied, dict) else {"v1": applied} if applied else {}
    for n in e["affected_nodes"]:
        rec = {"kind": "ack", "schema_version": 1, "epoch": e["number"], "node": n, "phase": e["phase"],
               "leader_token": e["leader_token"], "status": "ok", "volumes": sorted(held or ["v1"])}  # fmt: skip
        if held:
            rec["applied"] = held
        await store.put(keys.ack(e["number"], n), rec)


async def fail(store: Store, node_id: str, device_id: str = "d1") -> None:
    failed = replace(device(node_id, device_id), state="failed", generation=2)
    await store.put(keys.device(node_id, device_id), failed.record())


async def mapping(store: Store) -> Volume:
    kv = await store.get(keys.volume("v1"))
    assert kv is not None
    return Volume.of(kv.value)


async def test_answers_for_an_earlier_mapping_do_not_resume_the_epoch(store: Store) -> None:
    lease = await store.grant_lease(30)
    for n in NODES:
        await store.put(keys.node(n), node(n).record())
        for d in ("d1", "d2"):
            await store.put(keys.device(n, d), device(n, d).record())
        await store.put(keys.alive(n), alive(n), lease=lease)
    v = volume("v1", [leg("n1"), leg("n2")], owner="n1", redundancy=2)
    await store.put(keys.volume("v1"), v.record())
    master = Master(store, MasterConfig("test"))
    task = asyncio.get_running_loop().create_task(master.run())
    try:
        await asyncio.wait_for(master.leading.wait(), 10)
        await fail(store, "n2")
        await answer(store, await until_phase(store, "quiescing"))
        e = await until_phase(store, "remapping")
        first = await mapping(store)
        assert first.generation > v.generation
        [new] = [x for x in first.legs if x.state == "rebuilding"]
        await fail(store, new.node, new.device)
        end = time.monotonic() + 10
        while (await mapping(store)).generation == first.generation:
            assert time.monotonic() < end, "the mapping was not written again"
            await asyncio.sleep(0.02)
        newest = await mapping(store)
        e = await until_phase(store, "remapping")
        await answer(store, e)  # answers that do not hold the newest mapping
        await asyncio.sleep(1.0)
        e = await epoch(store)
        assert e is not None and e["phase"] == "remapping", f"resumed on answers for an earlier mapping: {e}"
        await answer(store, e, newest.generation)
        await answer(store, await until_phase(store, "resuming"))
        await until_phase(store, "done")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await lease.revoke()
