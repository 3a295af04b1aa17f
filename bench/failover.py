"""Failover benchmark: how long volumes take to be remapped and serving again after a failure.

Runs a cluster as it runs in production, each part its own process: a local etcd, 3 SPDK
simulators (``--rpc-poll-ms 4``) with 2 aio devices each, a node agent per node (2 s leases) and a
controller, all on loopback. Measures, from the moment of the failure to every affected volume
remapped and its epoch finished (I/O resumed):

- device failures (``sim_bdev_fail``), one device at a time, restored between trials;
- node kills (simulator SIGKILLed, agent gone; noticed when its lease runs out);
- SPDK kills under a live agent (only the target SIGKILLed; the agent notices and leaves), then
  the target started again (the agent registers it as a new boot);
- the quiescing phase of an epoch over 1,000 volumes on 3 nodes (the master's own timing).

With ``--spdk-tgt COMMAND`` the nodes run real spdk_tgt processes instead (``-r SOCKET`` is added);
a device failure is then a ``bdev_aio_delete`` (restored with ``bdev_aio_create`` of the same file
and uuid).

Ends with one line: ``device_p99_ms=… node_p99_ms=… spdk_kill_p99_ms=… quiesce1000_p99_ms=…``.

    .venv/bin/python bench/failover.py [--volumes 20] [--device-trials 10] [--node-trials 3]
        [--spdk-kill-trials 3] [--quiesce-volumes 1000] [--quiesce-trials 5] [--rpc-poll-ms 4]
        [--spdk-tgt COMMAND]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spdkvirt.api.client import ApiClient
from spdkvirt.local import SpdkProcess
from spdkvirt.model.placement import Capacity
from spdkvirt.model.records import Device, Epoch, Leg, Node, Volume
from spdkvirt.model.remap import ClusterView, place_volume
from spdkvirt.spdk.client import SpdkClient
from spdkvirt.store import Put, Store, keys, open_store
from spdkvirt.store.localetcd import LocalEtcd

DEBUG = bool(os.environ.get("BENCH_DEBUG"))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


async def until(check: Callable[[], Any], within: float, what: str, every: float = 0.02) -> Any:
    end = time.monotonic() + within
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > end:
            raise TimeoutError(what)
        await asyncio.sleep(every)


async def records(store: Store, kind: str) -> list[dict[str, Any]]:
    return [kv.value for kv in (await store.range(keys.prefix(kind))).kvs]


async def volumes(store: Store) -> dict[str, Volume]:
    return {r["name"]: Volume.of(r) for r in await records(store, "volume")}


async def healthy(store: Store, names: Iterable[str] | None = None) -> bool:
    vols = await volumes(store)
    if DEBUG:
        for n, v in vols.items():
            if v.state != "online":
                st = await store.get(keys.status(n))
                print(n, v.owner, v.generation, [(x.leg_id, x.node, x.state) for x in v.legs], st.value if st else None)
    wanted = set(names) if names is not None else set(vols)
    epochs = [Epoch.of(r) for r in await records(store, "epoch")]
    return all(vols[n].state == "online" for n in wanted if n in vols) and all(
        e.phase in ("done", "aborted") for e in epochs
    )


async def remapped(store: Store, names: set[str], bad: Callable[[Any], bool], since: int) -> bool:
    """Every named volume has a mapping without the bad legs, stamped by an epoch that is done."""
    vols = await volumes(store)
    done = {e.number for e in (Epoch.of(r) for r in await records(store, "epoch")) if e.phase == "done"}
    for n in names:
        v = vols[n]
        if any(bad(leg) for leg in v.legs) or bad_owner(v, bad) or v.epoch <= since or v.epoch not in done:
            return False
    return True


def bad_owner(v: Volume, bad: Callable[[Any], bool]) -> bool:
    return bool(bad(Leg("", v.owner, "", "")))


def on_device(where: tuple[str, str], leg: Leg) -> bool:
    return (leg.node, leg.device) == where


def on_node(node: str, leg: Leg) -> bool:
    return leg.node == node


async def last_epoch(store: Store) -> int:
    return max((r["number"] for r in await records(store, "epoch")), default=0)


async def create_volumes(api: ApiClient, count: int, size: int, prefix: str = "b") -> None:
    sem = asyncio.Semaphore(4)

    async def one(i: int) -> None:
        async with sem:
            await api.call("volume_create", {"name": f"{prefix}{i}", "size_bytes": size, "redundancy": 2})

    await asyncio.gather(*(one(i) for i in range(count)))


async def device_trials(c: ProcCluster, store: Store, trials: int) -> list[float]:
    out = []
    devices = [(n, d) for n in c.members for d in c.device_ids(n)]
    for i in range(trials):
        node, dev = devices[i % len(devices)]
        vols = await volumes(store)
        hit = {v.name for v in vols.values() if any((leg.node, leg.device) == (node, dev) for leg in v.legs)}
        since = await last_epoch(store)
        async with SpdkClient(c.socket(node)) as spdk:
            [bdev] = await spdk.call("bdev_get_bdevs", {"name": dev})
            t0 = time.monotonic()
            await spdk.call("bdev_aio_delete" if c.target else "sim_bdev_fail", {"name": dev})
            if hit:
                bad = functools.partial(on_device, (node, dev))
                await until(functools.partial(remapped, store, hit, bad, since), 60, f"remap after {dev} failed")
                out.append((time.monotonic() - t0) * 1e3)
            await until(lambda: healthy(store), 120, "full redundancy")
            if c.target:
                again = {"filename": bdev["driver_specific"]["aio"]["filename"], "name": dev,
                         "block_size": bdev["block_size"], "uuid": bdev["uuid"]}  # fmt: skip
                await spdk.call("bdev_aio_create", again)
            else:
                await spdk.call("sim_bdev_restore", {"name": dev})
        await until(functools.partial(device_state, store, node, dev, "available"), 30, f"{dev} back")
        print(f"  device {node}/{dev}: {len(hit)} volume(s), {out[-1] if hit else 0:.0f} ms", flush=True)
        if DEBUG:
            for r in await records(store, "epoch"):
                if r["number"] > since:
                    print("   ", r["number"], r["reason"], r.get("timings"), r.get("ack_ms"), r.get("expelled"))
    return out


async def device_state(store: Store, node: str, dev: str, state: str) -> bool:
    kv = await store.get(keys.device(node, dev))
    return kv is not None and kv.value["state"] == state


async def node_trials(c: ProcCluster, store: Store, trials: int) -> list[float]:
    out = []
    for i in range(trials):
        node = c.members[i % len(c.members)]
        vols = await volumes(store)
        hit = {v.name for v in vols.values() if node in v.nodes()}
        since = await last_epoch(store)
        t0 = time.monotonic()
        c.kill_node(node)
        bad = functools.partial(on_node, node)
        await until(functools.partial(remapped, store, hit, bad, since), 60, f"remap after {node} died")
        out.append((time.monotonic() - t0) * 1e3)
        print(f"  node {node}: {len(hit)} volume(s), {out[-1]:.0f} ms", flush=True)
        await until(lambda: healthy(store), 120, "full redundancy")
        await c.start_node(node)
        await until(functools.partial(node_up, store, node), 30, f"{node} back")
    return out


async def spdk_kill_trials(c: ProcCluster, store: Store, trials: int) -> list[float]:
    out = []
    for i in range(trials):
        node = c.members[(i + 1) % len(c.members)]
        vols = await volumes(store)
        hit = {v.name for v in vols.values() if node in v.nodes()}
        since = await last_epoch(store)
        t0 = time.monotonic()
        c.sims[node].kill()  # the agent runs on
        bad = functools.partial(on_node, node)
        await until(functools.partial(remapped, store, hit, bad, since), 60, f"remap after {node}'s SPDK died")
        out.append((time.monotonic() - t0) * 1e3)
        print(f"  SPDK of {node}: {len(hit)} volume(s), {out[-1]:.0f} ms", flush=True)
        await until(lambda: healthy(store), 120, "full redundancy")
        c.sims[node].start()
        await c.sims[node].ready()
        await until(functools.partial(node_up, store, node), 30, f"{node} back")
    return out


async def node_up(store: Store, node: str) -> bool:
    kv = await store.get(keys.node(node))
    alive = await store.get(keys.alive(node))
    return kv is not None and kv.value["state"] == "up" and alive is not None


async def place_many(store: Store, count: int, size: int) -> list[str]:
    """Write ``count`` mirrored volumes straight into the database (the agents build them)."""
    nodes = {r["node_id"]: Node.of(r) for r in await records(store, "node")}
    devices = [Device.of(r) for r in await records(store, "device")]
    cluster = ClusterView(nodes, frozenset(nodes), {d.key: d for d in devices})
    existing = list((await volumes(store)).values())
    capacity = Capacity.of(devices, existing, cluster.usable_nodes())
    owned = Counter(v.owner for v in existing)
    names, ops = [], []
    for i in range(count):
        v = place_volume(Volume(f"q{i}", str(uuid.uuid4()), size, 2, "", ()), cluster, capacity, owned)
        owned[v.owner] += 1
        names.append(v.name)
        ops.append(Put(keys.volume(v.name), v.record()))
    for i in range(0, len(ops), 100):
        await store.txn([], ops[i : i + 100])
    return names


async def quiesce_trials(c: ProcCluster, store: Store, count: int, trials: int) -> list[float]:
    names = await place_many(store, count, 4 << 20)
    t0 = time.monotonic()
    await until(lambda: healthy(store, names), 600, f"{count} volumes built", every=0.5)
    print(f"  {count} volumes built in {time.monotonic() - t0:.1f} s", flush=True)
    nodes = sorted(c.members)
    out = []
    for _ in range(trials):
        number = await last_epoch(store) + 1
        leader = await store.election("master").leader()
        token = leader.token if leader is not None else 1
        epoch = Epoch(number, "manual", frozenset(names), frozenset(nodes), token, "quiescing", {}, "benchmark")
        await store.put(keys.epoch(number), epoch.record())
        rec = await until(functools.partial(epoch_done, store, number), 120, f"epoch {number}", every=0.05)
        out.append(float(rec["timings"]["quiescing"]))
        print(f"  epoch {number}: {rec['timings']}", flush=True)
        if DEBUG:
            print("   ", rec.get("ack_ms"), rec.get("expelled"))
    return out


async def epoch_done(store: Store, number: int) -> dict[str, Any] | None:
    kv = await store.get(keys.epoch(number))
    return kv.value if kv is not None and kv.value["phase"] == "done" else None


class ProcCluster:
    """etcd, simulators, agents and a controller as processes of this benchmark's own."""

    def __init__(
        self, workdir: Path, poll_ms: float, nodes: int = 3, devices: int = 2, target: tuple[str, ...] = ()
    ) -> None:
        self.workdir = workdir
        self.poll_ms = poll_ms
        self.target = target
        self.etcd = LocalEtcd(1)
        self.members = [f"n{i + 1}" for i in range(nodes)]
        self.devices = devices
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.sims: dict[str, SpdkProcess] = {}

    @property
    def url(self) -> str:
        return self.etcd.url()

    def socket(self, node: str) -> str:
        return str(self.workdir / node / "spdk.sock")

    def device_ids(self, node: str) -> list[str]:
        return [f"{node}d{k + 1}" for k in range(self.devices)]

    def spawn(self, name: str, argv: list[str]) -> None:
        with open(self.workdir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "spdkvirt.cli.main", *argv], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    async def start_node(self, node: str) -> None:
        d = self.workdir / node
        d.mkdir(parents=True, exist_ok=True)
        sim = self.sims.setdefault(node, SpdkProcess(self.socket(node), str(d / "spdk.log"), self.poll_ms, self.target))
        sim.start()
        await sim.ready()
        argv = ["agent", "--node-id", node, "--spdk-socket", self.socket(node), "--store", self.url,
                "--address", "127.0.0.1", "--nvmf-port", str(4420 + self.members.index(node))]  # fmt: skip
        for dev in self.device_ids(node):
            path = d / f"{dev}.img"
            if not path.exists():
                fd = os.open(path, os.O_CREAT | os.O_WRONLY)
                os.ftruncate(fd, 2 << 30)
                os.close(fd)
            argv += ["--device", f"{dev}={path}"]
        self.spawn(f"{node}-agent", argv)

    def kill_node(self, node: str) -> None:
        self.sims[node].kill()
        p = self.procs.pop(f"{node}-agent")
        p.send_signal(signal.SIGKILL)
        p.wait()

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.etcd.start()
        await asyncio.gather(*(self.start_node(n) for n in self.members))
        self.spawn("controller", ["controller", "--store", self.url, "--name", "bench",
                                  "--api-socket", str(self.workdir / "api.sock")])  # fmt: skip

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        for sim in self.sims.values():
            sim.kill()
        self.etcd.stop()


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="spdkvirt-failover-"))
    c = ProcCluster(workdir, args.rpc_poll_ms, target=tuple(shlex.split(args.spdk_tgt)))
    try:
        await c.start()
        store = await open_store(c.url)
        api = ApiClient(f"unix://{workdir / 'api.sock'}")
        await until(lambda: ready(api), 60, "API")
        await create_volumes(api, args.volumes, 16 << 20)
        await until(lambda: healthy(store), 120, "volumes healthy")
        print(f"{args.volumes} mirrored volumes on 3 nodes x 2 devices", flush=True)
        dev = await device_trials(c, store, args.device_trials)
        node = await node_trials(c, store, args.node_trials)
        spdk_kill = await spdk_kill_trials(c, store, args.spdk_kill_trials)
        quiesce = await quiesce_trials(c, store, args.quiesce_volumes, args.quiesce_trials)
        await store.close()
    finally:
        c.stop()
        if not DEBUG:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"device failure -> remapped: p50 {pct(dev, 50):.0f} ms, p99 {pct(dev, 99):.0f} ms ({len(dev)} trials)")
    print(f"node kill -> remapped: p50 {pct(node, 50):.0f} ms, p99 {pct(node, 99):.0f} ms ({len(node)} trials)")
    print(
        f"SPDK kill -> remapped: p50 {pct(spdk_kill, 50):.0f} ms, p99 {pct(spdk_kill, 99):.0f} ms "
        f"({len(spdk_kill)} trials)"
    )
    print(f"quiesce {args.quiesce_volumes} volumes: p50 {pct(quiesce, 50):.1f} ms, p99 {pct(quiesce, 99):.1f} ms")
    print(
        f"device_p99_ms={pct(dev, 99):.0f} node_p99_ms={pct(node, 99):.0f} spdk_kill_p99_ms={pct(spdk_kill, 99):.0f} "
        f"quiesce1000_p99_ms={pct(quiesce, 99):.1f}"
    )


async def ready(api: ApiClient) -> bool:
    try:
        status = await api.call("cluster_status", {})
    except Exception:
        return False
    return bool(status["nodes"].get("up", 0) >= 3)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--volumes", type=int, default=20)
    p.add_argument("--device-trials", type=int, default=10)
    p.add_argument("--node-trials", type=int, default=3)
    p.add_argument("--quiesce-volumes", type=int, default=1000)
    p.add_argument("--quiesce-trials", type=int, default=5)
    p.add_argument("--spdk-kill-trials", type=int, default=3)
    p.add_argument("--rpc-poll-ms", type=float, default=4.0)
    p.add_argument("--spdk-tgt", default="", help="start real spdk_tgt processes with this command")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO if a.verbose else logging.ERROR, stream=sys.stderr)
    asyncio.run(main(a))
