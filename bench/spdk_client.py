"""Benchmark of the SPDK adapter against spdkvirt-sim.

Starts a simulator, then measures:
  * latency of `bdev_get_bdevs` through SpdkClient (sequential calls): p50/p99;
  * the same request as a raw blocking-socket round trip (the floor the adapter adds to);
  * simulator RPC throughput with pipelined calls;
  * with --rpc-poll-ms N (real SPDK: 4), 20 sequential calls against 20 pipelined ones.

The last line printed is always:
  adapter_p50_us=... adapter_p99_us=... raw_p50_us=... sim_rps=...

    .venv/bin/python bench/spdk_client.py [--calls 2000] [--seconds 2] [--rpc-poll-ms 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.methods import Spdk

REQUEST = ("bdev_get_bdevs", None)


def percentile(samples_ns: list[int], q: float) -> float:
    """The q-th percentile in microseconds (nearest rank)."""
    ordered = sorted(samples_ns)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[rank] / 1000


@contextlib.contextmanager
def simulator(poll_ms: float) -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="spdkvirt-bench"))
    sock = str(workdir / "spdk.sock")
    log = workdir / "sim.log"
    cmd = [sys.executable, "-m", "spdkvirt.spdk.sim.main", "-r", sock, "--rpc-poll-ms", str(poll_ms)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not raw_ready(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"simulator did not start: {' '.join(cmd)}\n{log.read_text()[-2000:]}")
            time.sleep(0.02)
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def raw_ready(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            raw_call(s, 0, "spdk_get_version")
        return True
    except OSError:
        return False


def raw_call(s: socket.socket, rid: int, method: str) -> object:
    """One request and its reply on a blocking socket: no ids matched, no pipelining."""
    s.sendall(json.dumps({"jsonrpc": "2.0", "method": method, "id": rid}).encode())
    buf = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
        try:
            return json.loads(buf)
        except ValueError:
            continue


def bench_raw(path: str, calls: int) -> list[int]:
    samples = []
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        for i in range(calls):
            t0 = time.perf_counter_ns()
            raw_call(s, i, REQUEST[0])
            samples.append(time.perf_counter_ns() - t0)
    return samples


async def bench_adapter(client: SpdkClient, calls: int) -> list[int]:
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        await client.call(*REQUEST)
        samples.append(time.perf_counter_ns() - t0)
    return samples


async def bench_throughput(client: SpdkClient, seconds: float, window: int) -> float:
    loop = asyncio.get_running_loop()
    done = 0
    start = loop.time()
    while loop.time() - start < seconds:
        await client.gather([REQUEST] * window)
        done += window
    return done / (loop.time() - start)


async def sequential_vs_pipelined(client: SpdkClient, n: int = 20) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(n):
        await client.call(*REQUEST)
    sequential = loop.time() - t0
    t0 = loop.time()
    await client.gather([REQUEST] * n)
    return sequential, loop.time() - t0


async def run(args: argparse.Namespace, path: str) -> str:
    async with SpdkClient(path) as client:
        spdk = Spdk(client)
        for i in range(args.bdevs):
            await spdk.bdev_malloc_create(2048, 512, name=f"Malloc{i}")
        await bench_adapter(client, min(200, args.calls))  # warm up
        adapter = await bench_adapter(client, args.calls)
        raw = await asyncio.to_thread(bench_raw, path, args.calls)
        rps = await bench_throughput(client, args.seconds, args.window)
        a50, a99 = percentile(adapter, 50), percentile(adapter, 99)
        r50, r99 = percentile(raw, 50), percentile(raw, 99)
        print(f"bdev_get_bdevs with {args.bdevs} bdevs, {args.calls} sequential calls, rpc poll {args.rpc_poll_ms} ms")
        print(f"  adapter   p50 {a50:9.1f} us   p99 {a99:9.1f} us   mean {statistics.fmean(adapter) / 1000:9.1f} us")
        print(f"  raw       p50 {r50:9.1f} us   p99 {r99:9.1f} us   mean {statistics.fmean(raw) / 1000:9.1f} us")
        print(f"  pipelined throughput ({args.window} per write, {args.seconds} s): {rps:,.0f} calls/s")
        if args.rpc_poll_ms > 0:
            seq, pipe = await sequential_vs_pipelined(client)
            print(f"  20 calls: sequential {seq * 1000:.1f} ms, pipelined {pipe * 1000:.1f} ms")
        return f"adapter_p50_us={a50:.1f} adapter_p99_us={a99:.1f} raw_p50_us={r50:.1f} sim_rps={rps:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000, help="sequential calls per latency sample set")
    ap.add_argument("--seconds", type=float, default=2.0, help="duration of the throughput run")
    ap.add_argument("--window", type=int, default=100, help="requests written together in the throughput run")
    ap.add_argument("--bdevs", type=int, default=4, help="malloc bdevs to create first")
    ap.add_argument("--rpc-poll-ms", type=float, default=0.0, help="simulator RPC poller period (real SPDK: 4)")
    args = ap.parse_args()
    with simulator(args.rpc_poll_ms) as path:
        line = asyncio.run(run(args, path))
    print(line)


if __name__ == "__main__":
    main()
