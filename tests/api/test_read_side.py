"""StoreReadSide and StoreIdempotencyLog over an embedded file store, through the dispatcher (results
checked against their schemas)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.api import errors
from spdkvirt.api.methods import StoreReadSide
from spdkvirt.api.server import Dispatcher
from spdkvirt.api.service import IdempotencyEntry, StoreIdempotencyLog
from spdkvirt.store import Store, keys, open_store
from tests.api.conftest import request
from tests.api.fake import FakeService
from tests.store import records


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(f"file://{tmp_path / 'db'}")
    try:
        for rec in (
            records.node("n1"),
            records.node("n2", state="down"),
            records.alive("n1"),
            records.device("n1", "d1", lvstore={"name": "lvs_d1", "uuid": records.volume()["uuid"], "free_bytes": 5}),
            records.device("n2", "d1"),
            records.volume(
                "v1", legs=[records.leg("l0", "n1", "d1"), records.leg("l1", "n2", "d1", state="rebuilding")]
            ),
            records.status("v1", rebuild={"leg": "l1", "percent": 42}),
            records.volume("v2"),  # a copy on n2, which holds no liveness
            records.volume("v3", redundancy=1, legs=[records.leg("l0", "n1", "d1")]),
            records.export_nvmf("v1", "e1"),
            records.export_iscsi("v2", "e2"),
            records.epoch(1, phase="done"),
            records.epoch(2),
            records.leader("master", 0x99, address="unix:///x"),
        ):
            await s.put(keys.for_record(rec), rec)
        yield s
    finally:
        await s.close()


@pytest.fixture
def reads(store: Store) -> Dispatcher:
    return Dispatcher(FakeService(), StoreReadSide(store), idempotency=StoreIdempotencyLog(store), debug=True)


async def call(d: Dispatcher, method: str, params: dict[str, Any] | None = None) -> Any:
    out = await d.handle(request(method, params or {}))
    assert "result" in out, out
    return out["result"]


async def test_volumes(reads: Dispatcher) -> None:
    vols = {v["name"]: v for v in await call(reads, "volume_list")}
    assert vols["v1"]["state"] == "rebuilding" and vols["v1"]["rebuild_percent"] == 42.0
    assert vols["v1"]["exports"] == ["e1"]
    assert vols["v2"]["state"] == "degraded" and "rebuild_percent" not in vols["v2"]  # its copy on n2
    assert vols["v3"]["state"] == "healthy"
    assert await call(reads, "volume_get", {"name": "v1"}) == vols["v1"]
    out = await reads.handle(request("volume_get", {"name": "v9"}))
    assert out["error"]["code"] == errors.NotFound.CODE


async def test_nodes_devices_exports(reads: Dispatcher) -> None:
    nodes = {n["node_id"]: n for n in await call(reads, "node_list")}
    assert nodes["n1"]["alive"] and not nodes["n2"]["alive"] and nodes["n1"]["devices"] == 1
    devices = await call(reads, "device_list", {"node": "n1"})
    assert devices == [
        {
            "node": "n1",
            "device_id": "d1",
            "bdev": "d1n1",
            "state": "available",
            "size_bytes": 1 << 30,
            "free_bytes": 5,
            "legs": 3,
        }
    ]
    assert [e["export_id"] for e in await call(reads, "export_list")] == ["e1", "e2"]
    assert [e["export_id"] for e in await call(reads, "export_list", {"volume": "v2"})] == ["e2"]


async def test_cluster_status_and_epochs(reads: Dispatcher) -> None:
    status = await call(reads, "cluster_status")
    assert status["nodes"] == {"up": 1, "down": 1}
    assert status["volumes"]["rebuilding"] == 1 and status["volumes"]["degraded"] == 1
    assert status["volumes"]["healthy"] == 1
    assert status["leader"]["holder"] == "n1/1" and status["epoch"] == 2
    assert [e["number"] for e in await call(reads, "epoch_list")] == [2, 1]
    assert [e["number"] for e in await call(reads, "epoch_list", {"limit": 1})] == [2]


async def test_store_idempotency_log(store: Store) -> None:
    log = StoreIdempotencyLog(store)
    assert await log.get("k1") is None
    entry = IdempotencyEntry("k1", "volume_create", "a" * 64, {"name": "v1"})
    await log.put(entry)
    assert await log.get("k1") == entry
    assert IdempotencyEntry.from_json(entry.to_json()) == entry
