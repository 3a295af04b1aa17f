"""A leader that died halfway through writing an epoch's mappings: the next one takes over.

The store holds what such a crash leaves: an epoch still quiescing under the old leader's token,
two of its four volumes already written with their new mappings, two not. The master (over a file
store; the test answers for the nodes) takes the epoch over under its own token, remaps the rest,
leaves the two written mappings as they are, and ends the epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from spdkvirt.controller.master import Master, MasterConfig
from spdkvirt.model.placement import Capacity
from spdkvirt.model.records import Volume
from spdkvirt.model.remap import remap
from spdkvirt.store import Store, keys
from tests.integration.conftest import alive
from tests.integration.test_reremap import answer, epoch, until_phase
from tests.unit.model.builders import cluster, device, leg, node, volume

NODES = ("n1", "n2", "n3")
OLD_TOKEN = 1


async def test_epoch_half_written_by_a_dead_leader_is_finished_once(store: Store) -> None:
    lease = await store.grant_lease(30)
    failed = replace(device("n2"), state="failed", generation=2)
    devices = [failed, *(device(n, d) for n in NODES for d in ("d1", "d2") if (n, d) != ("n2", "d1"))]
    for n in NODES:
        await store.put(keys.node(n), node(n).record())
        await store.put(keys.alive(n), alive(n), lease=lease)
    for d in devices:
        await store.put(keys.device(d.node, d.device_id), d.record())
    before = [volume(f"v{i}", [leg("n1"), leg("n2")], owner="n1", redundancy=2) for i in range(4)]
    view = cluster([node(n) for n in NODES], devices)
    capacity = Capacity.of(devices, before, view.usable_nodes())
    written = {}
    for i, v in enumerate(before):
        record = v
        if i < 2:  # what the dead leader wrote before it died
            record = replace(remap(v, view, capacity, {}).volume, epoch=1)
            written[v.name] = record
        await store.put(keys.volume(v.name), record.record())
    await store.put(keys.epoch(1), {
        "kind": "epoch", "schema_version": 1, "number": 1, "reason": "device_failed",
        "affected_volumes": [v.name for v in before], "affected_nodes": list(NODES), "leader_token": OLD_TOKEN,
        "phase": "quiescing", "acks": {},
    })  # fmt: skip

    master = Master(store, MasterConfig("next"))
    task = asyncio.get_running_loop().create_task(master.run())
    try:
        await asyncio.wait_for(master.leading.wait(), 10)
        e = await until_phase(store, "quiescing")
        while e["leader_token"] == OLD_TOKEN:
            await asyncio.sleep(0.02)
            e = await epoch(store)  # type: ignore[assignment]
        for phase in ("quiescing", "remapping", "resuming"):
            e = await until_phase(store, phase)
            gens = {}
            for v in before:
                kv = await store.get(keys.volume(v.name))
                assert kv is not None
                gens[v.name] = kv.value["generation"]
            await answer(store, e, gens)
        done = await until_phase(store, "done")
        assert done["leader_token"] != OLD_TOKEN
        for v in before:
            kv = await store.get(keys.volume(v.name))
            assert kv is not None
            now = Volume.of(kv.value)
            assert now.epoch == 1 and all((x.node, x.device) != ("n2", "d1") for x in now.legs), now
            if v.name in written:
                assert now == written[v.name], f"{v.name} was remapped again"
            else:
                assert now.generation == v.generation + 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await lease.revoke()
