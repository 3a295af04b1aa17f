"""Admin API benchmark: volume create latency, creating many volumes, memory, and a controller restart.

Runs a local cluster in this process (embedded store, 3 simulator-backed nodes x 2 devices,
simulated RPC poller ``--rpc-poll-ms``, 4 ms like SPDK) and measures through the admin API:

1. the latency of one mirrored ``volume_create`` followed by its ``export_create``, end to end
   (each returns once the owner reports the volume assembled / exported), one pair at a time;
2. the time to create ``--count`` more mirrored volumes with ``--concurrency`` calls in flight,
   until every one is healthy (a call may answer while its volume is still being created); no
   call starts after ``--budget`` seconds or after an error: what was reached is reported then;
3. this process's peak RSS (the controller, the agents and the API run here; the simulators are
   processes of their own, reported apart);
4. a controller restart: the controller task is stopped and a new one started on the same store,
   timed until it leads with its mirror synced, its first pass over every volume found nothing to
   change, and every agent, asked for a pass right then, has completed one with nothing to do.

Everything shares this process's event loop, so the largest stall of the loop is reported per
phase: a stall longer than the lease TTL (``--lease-ttl``, 2 s by default) costs the master its
leadership and the agents their liveness. Ends with one line:
``create_p99_ms=… create10k_s=… rss_mb=… reconcile_s=…`` (``create10k_s=na`` when fewer than
10,000 volumes were created; ``created=`` and ``created_s=`` then say how many, and when they were
all healthy). ``--profile F``
writes a cProfile of the whole run to ``F`` and prints where the time went, by function.

    .venv/bin/python bench/api.py [--count 10000] [--latency 200] [--concurrency 32] [--budget 900]
        [--rpc-poll-ms 4] [--lease-ttl 2] [--profile F]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from spdkvirt.agent.agent import Agent
from spdkvirt.api.client import ApiClient, ApiUnreachable
from spdkvirt.api.errors import ApiError
from spdkvirt.controller.master import Master
from spdkvirt.local import LocalCluster

MIB = 1 << 20
GIB = 1 << 30
VOLUME_SIZE = 4 * MIB
CLUSTER = 4 * MIB
TARGET_COUNT = 10000
DEADLINE = 600.0


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rss_mb() -> float:
    """Peak resident set of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class LoopLag:
    """The longest the event loop made a short sleep wait beyond its time."""

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self.worst = 0.0
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(self.every)
            self.worst = max(self.worst, time.monotonic() - t - self.every)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="loop lag")

    def take(self) -> float:
        """The worst stall since the last take, in seconds."""
        worst, self.worst = self.worst, 0.0
        return worst

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def until(what: str, check: Callable[[], bool], within: float = DEADLINE) -> None:
    end = time.monotonic() + within
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not within {within:g} s")
        await asyncio.sleep(0.01)


@dataclass
class Latency:
    create: list[float] = field(default_factory=list)
    export: list[float] = field(default_factory=list)
    both: list[float] = field(default_factory=list)


async def latency(cluster: LocalCluster, count: int) -> Latency:
    out = Latency()
    async with ApiClient(str(cluster.api_socket)) as api:
        for i in range(count):
            name = f"lat{i:05d}"
            t0 = time.perf_counter()
            await api.call("volume_create", {"name": name, "size_bytes": VOLUME_SIZE, "redundancy": 2})
            t1 = time.perf_counter()
            await api.call("export_create", {"volume": name, "protocol": "nvmf", "allow_any_host": True})
            t2 = time.perf_counter()
            out.create.append((t1 - t0) * 1e3)
            out.export.append((t2 - t1) * 1e3)
            out.both.append((t2 - t0) * 1e3)
    return out


@dataclass
class Many:
    created: int = 0
    unfinished: int = 0
    seconds: float = 0.0
    healthy_after: float | None = None
    calls: list[float] = field(default_factory=list)
    stopped: str = ""


async def create_many(cluster: LocalCluster, count: int, concurrency: int, budget: float) -> Many:
    """Create ``count`` volumes with ``concurrency`` calls in flight, starting none after ``budget`` s
    or after an error."""
    result = Many()
    names: Iterator[str] = (f"v{i:06d}" for i in range(count))
    t0 = time.perf_counter()
    step = max(count // 10, 100)

    async def worker() -> None:
        async with ApiClient(str(cluster.api_socket), timeout=DEADLINE) as api:
            for name in names:
                if result.stopped:
                    return
                if time.perf_counter() - t0 > budget:
                    result.stopped = result.stopped or f"budget of {budget:g} s spent"
                    return
                t = time.perf_counter()
                try:
                    vol = await api.call("volume_create", {"name": name, "size_bytes": VOLUME_SIZE, "redundancy": 2})
                except (ApiError, ApiUnreachable) as e:
                    result.stopped = result.stopped or f"{name}: {type(e).__name__}: {e}"
                    return
                result.calls.append((time.perf_counter() - t) * 1e3)
                result.created += 1
                result.unfinished += vol["state"] == "creating"
                if result.created % step == 0:
                    print(f"   {result.created} volumes in {time.perf_counter() - t0:.1f} s", flush=True)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - t0
    return result


def last_pass_idle(agent: Agent) -> Callable[[], tuple[int, bool]]:
    """Wrap ``agent.reconcile`` to remember whether its last pass had work: (passes, idle)."""
    state = {"passes": 0, "idle": False}
    inner = agent.reconcile

    async def reconcile() -> bool:
        again = await inner()
        state["passes"] += 1
        state["idle"] = not again
        return again

    agent.reconcile = reconcile  # type: ignore[method-assign]
    return lambda: (state["passes"], bool(state["idle"]))


def steps_done(master: Master) -> Callable[[], int]:
    """Wrap ``master.step`` to count the passes the master completed."""
    count = {"n": 0}
    inner = master.step

    async def step() -> None:
        await inner()
        count["n"] += 1

    master.step = step  # type: ignore[method-assign]
    return lambda: count["n"]


@dataclass(frozen=True)
class Restart:
    led: float
    first_pass: float
    steady: float


async def restart_controller(cluster: LocalCluster) -> Restart:
    watchers = {}
    for n in cluster.members:
        assert n.agent is not None
        watchers[n.node_id] = last_pass_idle(n.agent)
    await cluster.stop_controller()
    t0 = time.perf_counter()
    master = cluster.start_controller("restarted")
    steps = steps_done(master)
    await until("the new controller leads", master.leading.is_set)
    led = time.perf_counter() - t0

    def quiet() -> bool:
        return steps() >= 1 and not any(e.phase not in ("done", "aborted") for e in master.values("epoch"))

    await until("the master's first pass", quiet)
    first = time.perf_counter() - t0
    marks = {k: w()[0] for k, w in watchers.items()}
    for n in cluster.members:  # a pass now rather than at the next resync timer
        if n.agent is not None:
            n.agent.kick.set()

    def agents_idle() -> bool:
        return all(w()[0] > marks[k] and w()[1] for k, w in watchers.items())

    await until("the agents steady", agents_idle)
    return Restart(led, first, time.perf_counter() - t0)


def healthy(cluster: LocalCluster, total: int) -> bool:
    m = cluster.master()
    if m is None or m.mirror is None or not m.leading.is_set():
        return False
    volumes = m.values("volume")
    return len(volumes) >= total and all(v.state == "online" for v in volumes)


def volume_states(cluster: LocalCluster) -> str:
    m = cluster.master()
    if m is None or m.mirror is None:
        return "no leading master"
    states = Counter(v.state for v in m.values("volume"))
    return ", ".join(f"{k} {n}" for k, n in sorted(states.items()))


def line(label: str, samples: list[float]) -> str:
    return (f"{label}: p50 {statistics.median(samples):.1f} ms, p99 {percentile(samples, 99):.1f} ms, "
            f"max {max(samples):.1f} ms")  # fmt: skip


async def run(args: argparse.Namespace) -> str:
    base = Path(args.dir) if args.dir else None
    workdir = Path(tempfile.mkdtemp(prefix="spdkvirt-bench-api-", dir=base))
    total = args.count + args.latency
    # an lvstore holds one lvol per cluster of its device at most (a metadata page each, SPDK's
    # default ratio), thin or not: size the devices for every leg with a quarter to spare
    legs_per_device = -(-total * 2 // 6)
    device_size = max(GIB, (legs_per_device * 5 // 4 + 16) * CLUSTER)
    device_size = -(-device_size // GIB) * GIB
    lag = LoopLag()
    lag.start()
    cluster = LocalCluster(workdir, nodes=3, devices=2, device_size=device_size, poll_ms=args.rpc_poll_ms,
                           lease_ttl=args.lease_ttl)  # fmt: skip
    try:
        async with cluster:
            t = time.perf_counter()
            await cluster.wait_ready(60)
            up = time.perf_counter() - t
            print(f"cluster: 3 nodes x 2 devices of {device_size // GIB} GiB, RPC poller {args.rpc_poll_ms:g} ms, "
                  f"lease TTL {args.lease_ttl} s, up in {up:.1f} s ({workdir})", flush=True)  # fmt: skip
            lag.take()

            lat = await latency(cluster, args.latency)
            p99 = percentile(lat.both, 99)
            print(line(f"volume_create + export_create, {args.latency} pairs one at a time", lat.both))
            print("   " + line("volume_create", lat.create))
            print("   " + line("export_create", lat.export))
            tenth = max(len(lat.both) // 10, 1)
            print(f"   median of the first {tenth}: {statistics.median(lat.both[:tenth]):.1f} ms, "
                  f"of the last {tenth}: {statistics.median(lat.both[-tenth:]):.1f} ms; "
                  f"longest loop stall {lag.take() * 1e3:.0f} ms", flush=True)  # fmt: skip

            many = await create_many(cluster, args.count, args.concurrency, args.budget)
            t0 = time.perf_counter() - many.seconds
            rate = many.created / many.seconds if many.seconds else 0.0
            stopped = f"; stopped: {many.stopped}" if many.stopped else ""
            print(f"{many.created} of {args.count} volume_create calls answered in {many.seconds:.1f} s "
                  f"({rate:.0f}/s, {args.concurrency} in flight; {many.unfinished} answered while still "
                  f"creating){stopped}")  # fmt: skip
            if many.calls:
                print("   " + line("per call", many.calls) + f"; longest loop stall {lag.take():.2f} s", flush=True)
            try:
                await until("every volume healthy", lambda: healthy(cluster, args.latency + many.created), args.settle)
                many.healthy_after = time.perf_counter() - t0
                print(f"   all {args.latency + many.created} volumes healthy {many.healthy_after:.1f} s after the "
                      f"first call; longest loop stall {lag.take():.2f} s", flush=True)  # fmt: skip
            except TimeoutError as e:
                print(f"   {e} ({volume_states(cluster)})", flush=True)

            rss = rss_mb()
            sims = [proc_rss_mb(n.process.proc.pid) for n in cluster.members if n.process and n.process.proc]
            print(f"peak RSS of this process (controller, agents, API, store): {rss:.0f} MB; "
                  f"simulators now: {' / '.join(f'{s:.0f}' for s in sims)} MB", flush=True)  # fmt: skip

            reconcile = "na"
            if many.healthy_after is not None:
                r = await restart_controller(cluster)
                reconcile = f"{r.steady:.2f}"
                print(f"controller restart over {args.latency + many.created} volumes: leads with its mirror "
                      f"synced after {r.led:.2f} s, first pass done {r.first_pass:.2f} s, agents steady "
                      f"{r.steady:.2f} s; longest loop stall {lag.take():.2f} s", flush=True)  # fmt: skip
            else:
                print("controller restart: not measured (the cluster is not in a steady state)")
    finally:
        await lag.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = f"create_p99_ms={p99:.1f}"
    done = f"{many.healthy_after:.1f}" if many.healthy_after is not None else "na"
    if many.created == TARGET_COUNT and many.healthy_after is not None:
        summary += f" create10k_s={done}"
    else:
        summary += f" create10k_s=na created={many.created} created_s={done}"
    return summary + f" rss_mb={rss:.0f} reconcile_s={reconcile}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=TARGET_COUNT, help="volumes to create concurrently")
    parser.add_argument("--latency", type=int, default=200, help="create+export pairs to time one by one")
    parser.add_argument("--concurrency", type=int, default=32, help="API calls in flight while creating many")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds to spend creating many at most")
    parser.add_argument("--settle", type=float, default=300.0, help="seconds to wait for every volume healthy")
    parser.add_argument("--rpc-poll-ms", type=float, default=4.0, help="simulated SPDK RPC poller period")
    parser.add_argument("--lease-ttl", type=int, default=2, help="lease TTL of the master and the agents")
    parser.add_argument("--dir", help="parent directory of the work directory (default: the temp dir)")
    parser.add_argument("--profile", metavar="F", help="write a cProfile of the run to F and print its top")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO to stderr")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, stream=sys.stderr)
    prof = cProfile.Profile() if args.profile else None
    if prof is not None:
        prof.enable()
    try:
        summary = asyncio.run(run(args))
    finally:
        if prof is not None:
            prof.disable()
            prof.dump_stats(args.profile)
            stats = pstats.Stats(prof, stream=sys.stdout)
            stats.sort_stats("cumulative").print_stats(r"spdkvirt/(agent|controller|model|mirror|store|api)", 40)
            stats.sort_stats("tottime").print_stats(25)
    print(summary)


if __name__ == "__main__":
    main()
