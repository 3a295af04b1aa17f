"""Store benchmark: compare-and-swap write latency and leader takeover time.

Measures sequential CAS writes (``put`` with the expected revision) on the embedded file store (in a
temp directory on disk, so fsync is real) and on local etcd clusters of 1 and 3 members (tmpfs), then
how long a waiting candidate takes to lead after the leader's process is SIGKILLed (lease TTL 1 s).
Ends with one line: ``file_p99_ms=… etcd1_p99_ms=… etcd3_p99_ms=… leader_takeover_ms=…``.

    .venv/bin/python bench/store.py [--writes 500] [--takeovers 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from spdkvirt.store import Store, keys, open_store
from spdkvirt.store.localetcd import LocalEtcd

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 20
TTL = 1

CAMPAIGNER = """
import asyncio, sys
from spdkvirt.store import open_store
async def main():
    store = await open_store(sys.argv[1])
    lease = await store.grant_lease(int(sys.argv[2]))
    leadership = await store.election("bench").campaign("victim", lease)
    print("LEADER", leadership.token, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def node(generation: int) -> dict[str, object]:
    return {
        "kind": "node",
        "schema_version": 1,
        "node_id": "bench",
        "address": "127.0.0.1",
        "state": "up",
        "generation": generation,
    }


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def cas_latencies(store: Store, writes: int) -> list[float]:
    key = keys.node("bench")
    rev = await store.put(key, node(0))
    out = []
    for i in range(1, WARMUP + writes + 1):
        t0 = time.perf_counter()
        rev = await store.put(key, node(i), expect=rev)
        if i > WARMUP:
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def bench_cas(url: str, writes: int) -> tuple[float, float]:
    store = await open_store(url)
    try:
        samples = await cas_latencies(store, writes)
    finally:
        await store.close()
    return statistics.median(samples), percentile(samples, 99)


async def takeover_once(url: str) -> float:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CAMPAIGNER,
        url,
        str(TTL),
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    store = await open_store(url)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line.startswith(b"LEADER"):
            raise RuntimeError(f"campaigner did not lead: {line!r}")
        lease = await store.grant_lease(TTL)
        waiting = asyncio.create_task(store.election("bench").campaign("successor", lease))
        await asyncio.sleep(0.3)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.wait_for(waiting, 10 * TTL)
        took = (time.perf_counter() - t0) * 1000
        await lease.revoke()
        return took
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await store.close()


async def run(args: argparse.Namespace) -> None:
    results: dict[str, tuple[float, float]] = {}
    base = Path(args.dir) if args.dir else None
    tmp = Path(tempfile.mkdtemp(prefix="spdkvirt-bench-", dir=base))
    try:
        results["file"] = await bench_cas(f"file://{tmp}/store", args.writes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"file   ({tmp}): CAS write p50 {results['file'][0]:.3f} ms  p99 {results['file'][1]:.3f} ms", flush=True)

    takeovers: list[float] = []
    for size in (1, 3):
        with LocalEtcd(size) as cluster:
            name = f"etcd{size}"
            results[name] = await bench_cas(cluster.url(), args.writes)
            print(f"{name}  : CAS write p50 {results[name][0]:.3f} ms  p99 {results[name][1]:.3f} ms", flush=True)
            if size == 3:
                for i in range(args.takeovers):
                    took = await takeover_once(cluster.url(f"takeover-{i}"))
                    takeovers.append(took)
                    print(f"etcd3  : leader takeover #{i + 1} after SIGKILL: {took:.0f} ms (lease TTL {TTL} s)")
    takeover = statistics.median(takeovers)
    print(
        f"file_p99_ms={results['file'][1]:.3f} etcd1_p99_ms={results['etcd1'][1]:.3f} "
        f"etcd3_p99_ms={results['etcd3'][1]:.3f} leader_takeover_ms={takeover:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--writes", type=int, default=500, help="CAS writes per store (after a warm-up)")
    parser.add_argument("--takeovers", type=int, default=3, help="leader kills to time (median reported)")
    parser.add_argument("--dir", help="parent directory for the file store (default: the temp dir)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
