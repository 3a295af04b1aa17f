"""What is particular to the embedded file store: the directory lock, recovery, snapshots, leases."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from spdkvirt.store import (
    Compacted,
    CorruptStore,
    EventKind,
    StoreClosed,
    StoreLocked,
    keys,
    open_store,
)
from tests.store import records

ROOT = Path(__file__).resolve().parents[2]
N1, N2 = keys.node("n1"), keys.node("n2")

HOLDER = """
import asyncio, sys
from spdkvirt.store import open_store
async def main():
    s = await open_store(sys.argv[1])
    print("OPEN", flush=True)
    sys.stdin.readline()
    await s.close()
asyncio.run(main())
"""


async def test_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"OPEN\n"
        with pytest.raises(StoreLocked) as e:
            await open_store(url)
        assert f"process {proc.pid}" in str(e.value) and "etcd://" in str(e.value)
        await asyncio.wait_for(proc.communicate(b"\n"), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    s = await open_store(url)
    with pytest.raises(StoreLocked, match=f"process {os.getpid()}"):
        await open_store(url)
    await s.close()
    await (await open_store(url)).close()


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    s = await open_store(f"file://{tmp_path}/store")
    await s.close()
    with pytest.raises(StoreClosed):
        await s.get(N1)
    with pytest.raises(StoreClosed):
        await s.put(N1, records.node("n1"))
    await s.close()


async def test_torn_last_write_is_cut_off(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    async with await open_store(url) as s:
        await s.put(N1, records.node("n1"))
        await s.put(N2, records.node("n2"))
    log = tmp_path / "store" / "log.jsonl"
    good = log.stat().st_size
    with log.open("ab") as f:
        f.write(b'{"ch":[["p","/spdkvirt/node/n3",{"kind":"no')
    async with await open_store(url) as s:
        assert [kv.key for kv in (await s.range(keys.prefix("node"))).kvs] == [N1, N2]
        assert log.stat().st_size == good
        await s.put(N1, records.node("n1", generation=1))
    async with await open_store(url) as s:
        kv = await s.get(N1)
        assert kv is not None and kv.value["generation"] == 1


async def test_damage_before_good_lines_is_corruption(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    async with await open_store(url) as s:
        for i in range(3):
            await s.put(N1, records.node("n1", generation=i))
    log = tmp_path / "store" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"generation":1', b'"generation":7')
    log.write_bytes(b"".join(lines))
    with pytest.raises(CorruptStore, match="line 2"):
        await open_store(url)


async def test_snapshots_compact_the_log_and_keep_recent_history(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store?snapshot_bytes=4000&history=30"
    async with await open_store(url) as s:
        first = await s.put(N1, records.node("n1"))
        for i in range(1, 120):
            await s.put(N1, records.node("n1", generation=i))
        last = await s.put(N2, records.node("n2"))
    d = tmp_path / "store"
    assert (d / "log.jsonl").stat().st_size < 4000
    snap = json.loads((d / "snapshot.json").read_text())
    assert snap["format"] == "spdkvirt-file-store" and snap["revision"] > first
    async with await open_store(url) as s:
        kv = await s.get(N1)
        assert kv is not None and kv.value["generation"] == 119 and kv.version == 120
        assert await s.revision() == last
        with pytest.raises(Compacted):
            w = await s.watch(keys.prefix("node"), start_revision=first)
            async for _ in w:
                pass
        async with await s.watch(keys.prefix("node"), start_revision=last - 5) as w:
            events = []
            async for ev in w:
                events.append(ev)
                if len(events) == 6:
                    break
        assert [e.revision for e in events] == list(range(last - 5, last + 1))
        assert events[-1].key == N2


async def test_leases_survive_a_restart_then_expire(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    s = await open_store(url)
    lease = await s.grant_lease(2, keepalive=False)
    await s.put(N1, records.node("n1"), lease=lease)
    await s.close()
    s = await open_store(url)
    try:
        w = await s.watch(N1, prefix=False)
        assert await s.get(N1) is not None
        t0 = time.monotonic()
        async for ev in w:
            assert ev.kind is EventKind.DELETE
            break
        assert 1.0 < time.monotonic() - t0 < 3.5
        assert await s.get(N1) is None
    finally:
        await s.close()


async def test_a_cancelled_writer_leaves_a_consistent_store(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    async with await open_store(url) as s:
        tasks = [asyncio.create_task(s.put(keys.node(f"n{i}"), records.node(f"n{i}"))) for i in range(20)]
        await asyncio.sleep(0)
        for t in tasks[::2]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        present = {kv.key for kv in (await s.range(keys.prefix("node"))).kvs}
        revision = await s.revision()
    async with await open_store(url) as s:
        assert {kv.key for kv in (await s.range(keys.prefix("node"))).kvs} == present
        assert await s.revision() == revision
