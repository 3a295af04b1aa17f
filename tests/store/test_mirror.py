"""The mirror: a record it cannot read is unknown, never absent."""

from __future__ import annotations

import asyncio

from spdkvirt.mirror import Mirror
from spdkvirt.model.records import Node
from spdkvirt.store import Store, keys
from spdkvirt.store.types import Delete, Put
from tests.store import records


async def settle(m: Mirror, check: object) -> None:
    for _ in range(200):
        if callable(check) and check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the mirror did not get there")


async def test_an_unreadable_record_keeps_its_last_value_and_is_listed(store: Store) -> None:
    key = keys.node("n1")
    await store.put(key, records.node("n1"))
    await store.backend.txn([], [Put(keys.node("n2"), {"kind": "node", "node_id": "n2"})], [])  # no address
    m = Mirror(store, {"node": Node.of})
    m.start()
    try:
        await m.synced.wait()
        assert [n.node_id for n in m.values("node")] == ["n1"]
        assert list(m.unparsed["node"]) == [keys.node("n2")] and not m.complete("node")
        newer = {k: v for k, v in records.node("n1", state="down").items() if k != "address"}
        await store.backend.txn([], [Put(key, newer)], [])  # written by a newer version, say
        await settle(m, lambda: key in m.unparsed["node"])
        [n1] = [n for n in m.values("node") if n.node_id == "n1"]
        assert n1.state == "up"  # as last read, not gone
        await store.put(key, records.node("n1", state="down"))
        await store.backend.txn([], [Delete(keys.node("n2"))], [])
        await settle(m, lambda: m.complete("node"))
        assert [n.state for n in m.values("node")] == ["down"]
    finally:
        await m.close()
