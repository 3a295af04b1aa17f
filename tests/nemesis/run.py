"""One fault schedule against a local cluster (simulators, the embedded store, one process):
hosts write versioned blocks to every volume through its export on its owner while the nemesis
runs the schedule; probes ask every node to accept a write for each volume; once the faults have
healed and the cluster has settled, every block is read back and judged (:mod:`.checker`).

The hosts' transport is swappable: the simulator's own wire on simulators, NVMe/TCP
(``tests/support/nvmetcp.py``) on real ``spdk_tgt`` processes (``target``), where a pulled device
is ``bdev_aio_delete`` and nodes are not slowed (SPDK has no fault injection).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import uuid as uuidlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from spdkvirt.api.client import ApiClient
from spdkvirt.local import LocalCluster
from spdkvirt.model import names
from spdkvirt.model.observed import QUERIES
from spdkvirt.model.records import Volume
from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import SpdkError
from spdkvirt.spdk.sim import nvme_host
from spdkvirt.spdk.sim.nvme_wire import OK, ConnectRejected, WireError
from spdkvirt.store import Store, keys
from tests.nemesis.checker import History, Verdict, judge
from tests.nemesis.schedule import KINDS, Fault, schedule
from tests.support import nvmetcp
from tests.support.steps import at_point

BLOCK = 4096
BLOCKS = 4  # workload blocks per volume; the probe writes the block after them
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:spdkvirt-nemesis"
IO_TIMEOUT = 2.0
PROBE_EVERY = 0.25
SLOW_MS = 300
SLOWED = (*(m for m, _ in QUERIES), "bdev_error_inject_error", "bdev_error_resume_pending")
STEP_WAIT = 8.0  # a controller fault at a step kills it anyway if no epoch reaches the step in this time

Connect = Callable[[str, int, str], Awaitable[Any]]


async def sim_connect(address: str, port: int, nqn: str) -> Any:
    hostid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, HOSTNQN))
    return await nvme_host.connect(address, str(port), nqn, HOSTNQN, hostid, limit_s=1.0)


async def real_connect(address: str, port: int, nqn: str) -> Any:
    hostid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, HOSTNQN))
    return await nvmetcp.connect(address, str(port), nqn, HOSTNQN, hostid, limit_s=1.0)


def data(volume: str, block: int, version: int) -> bytes:
    return struct.pack(">Q", version).ljust(64, b"\0") + f"{volume}/{block}".encode().ljust(BLOCK - 64, b"\x5a")


def version_of(raw: bytes) -> int:
    return int(struct.unpack(">Q", raw[:8])[0])


@dataclass(frozen=True)
class Result:
    seed: int
    faults: tuple[Fault, ...]
    verdict: Verdict
    missed: tuple[Fault, ...] = ()  # faults at a step that no epoch reached in time

    @property
    def at_steps(self) -> int:
        """Controller kills that came at the protocol step they were scheduled for."""
        return sum(1 for f in self.faults if f.step and f not in self.missed)

    def show(self) -> str:
        v = self.verdict
        lines = [f"seed {self.seed}: {'ok' if v.ok else 'FAILED'}, {v.acked_writes} acked writes"]
        lines += [f"  fault {f}{' (step not reached)' if f in self.missed else ''}" for f in self.faults]
        lines += [f"  lost: {x}" for x in v.lost] + [f"  double: {x}" for x in v.double_served]
        lines += [f"  unconverged: {x}" for x in v.unconverged]
        return "\n".join(lines)


class Nodes(Protocol):
    """What a run needs of a cluster: its store, where each node serves NVMe/TCP, and faults."""

    store: Store
    nodes: list[str]

    def endpoint(self, node: str) -> tuple[str, int]: ...

    async def fault(self, f: Fault) -> bool:
        """Cause ``f`` and, for one that heals, undo it after its duration; False if ``f`` names
        a protocol step that no epoch reached in time (the kill then came at the timeout)."""


class Local:
    """Faults on a local cluster (one process: the store, controller and agents; SPDK targets
    of its own)."""

    def __init__(self, c: LocalCluster) -> None:
        assert c.store is not None
        self.c = c
        self.store = c.store
        self.nodes = [n.node_id for n in c.members]
        self.busy: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def endpoint(self, node: str) -> tuple[str, int]:
        return self.c.address, self.c.node(node).port

    async def spdk(self, node: str, method: str, params: dict[str, Any]) -> None:
        with contextlib.suppress(SpdkError, OSError):
            async with SpdkClient(self.c.node(node).socket) as client:
                await client.call(method, params)

    async def fault(self, f: Fault) -> bool:
        # one fault at a time on a node: the one before is undone (a restarted target is ready)
        async with self.busy[f.node] if f.node else contextlib.nullcontext():
            return await self._fault(f)

    async def _fault(self, f: Fault) -> bool:
        reached = True
        if f.kind == "device":
            real = self.c.node(f.node).process
            method = "bdev_aio_delete" if real is not None and real.command else "sim_bdev_fail"
            await self.spdk(f.node, method, {"name": f.device})
        elif f.kind == "spdk":
            n = self.c.node(f.node)
            assert n.process is not None
            n.process.kill()
            await asyncio.sleep(f.duration)
            n.process.start()
            await n.process.ready()
        elif f.kind == "agent":
            await self.c.stop_agent(f.node, abandon=True)
            await asyncio.sleep(f.duration)
            await self.c.start_agent(f.node)
        elif f.kind == "controller":
            reached = not f.step or await at_point(self.store, f.step, STEP_WAIT)
            killed = self.c.master()
            await self.c.stop_controller(crash=True)
            await asyncio.sleep(f.duration)
            if self.c.master() is None and killed is not None:  # not started again by an overlapping fault
                self.c.start_controller()
        elif f.kind == "slow":
            for m in SLOWED:
                await self.spdk(f.node, "sim_rpc_delay", {"method": m, "ms": SLOW_MS})
            await asyncio.sleep(f.duration)
            for m in SLOWED:
                await self.spdk(f.node, "sim_rpc_delay", {"method": m, "ms": 0})
        else:
            raise ValueError(f"a local cluster cannot {f.kind}")
        return reached


class Run:
    def __init__(self, nodes: Nodes, volumes: list[str], connect: Connect = sim_connect) -> None:
        self.c = nodes
        self.volumes = volumes
        self.connect = connect
        self.history = History()
        self.missed: list[Fault] = []
        self.stop = asyncio.Event()
        self.started = time.monotonic()

    async def volume(self, name: str) -> Volume | None:
        kv = await self.c.store.get(keys.volume(name))
        return Volume.of(kv.value) if kv is not None else None

    async def open(self, node: str, name: str, within: float) -> Any:
        address, port = self.c.endpoint(node)
        return await asyncio.wait_for(self.connect(address, port, names.volume_nqn(name)), within)

    # ---- hosts ---------------------------------------------------------------------------------
    async def writer(self, name: str) -> None:
        """Versioned writes, one at a time, to the volume's owner as the database names it."""
        version = 0
        while not self.stop.is_set():
            v = await self.volume(name)
            if v is None or v.state == "failed":
                await asyncio.sleep(0.1)
                continue
            try:
                conn = await self.open(v.owner, name, IO_TIMEOUT)
            except (ConnectRejected, WireError, OSError, TimeoutError):
                await asyncio.sleep(0.1)
                continue
            try:
                while not self.stop.is_set():
                    version += 1
                    block = version % BLOCKS
                    self.history.attempt(name, block, version)
                    status = await asyncio.wait_for(conn.write(1, block * BLOCK, data(name, block, version)),
                                                    IO_TIMEOUT)  # fmt: skip
                    if status != OK:
                        break
                    self.history.ack(name, block, version)
                    await asyncio.sleep(0.01)
            except (WireError, OSError, TimeoutError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    await conn.shutdown()
            await asyncio.sleep(0.05)

    async def prober(self, name: str) -> None:
        """Every node is asked to accept a write for the volume, all at once, again and again;
        more than one accepting in a round is a volume served twice."""
        conns: dict[str, Any] = {}

        async def probe(node: str) -> bool:
            conn = conns.get(node)
            try:
                if conn is None:
                    conn = conns[node] = await self.open(node, name, PROBE_EVERY)
                status = await asyncio.wait_for(conn.write(1, BLOCKS * BLOCK, bytes(BLOCK)), PROBE_EVERY * 2)
                return bool(status == OK)
            except (ConnectRejected, WireError, OSError, TimeoutError):
                gone = conns.pop(node, None)
                if gone is not None:
                    with contextlib.suppress(Exception):
                        await gone.shutdown()
                return False

        nodes = self.c.nodes
        try:
            while not self.stop.is_set():
                at = time.monotonic() - self.started
                accepted = await asyncio.gather(*(probe(n) for n in nodes))
                self.history.probed(name, [n for n, ok in zip(nodes, accepted, strict=True) if ok], at)
                await asyncio.sleep(PROBE_EVERY)
        finally:
            for conn in conns.values():
                with contextlib.suppress(Exception):
                    await conn.shutdown()

    # ---- the nemesis ---------------------------------------------------------------------------
    async def fault(self, f: Fault) -> None:
        await asyncio.sleep(max(0.0, f.at - (time.monotonic() - self.started)))
        if not await self.c.fault(f):
            self.missed.append(f)

    # ---- settling and reading back -------------------------------------------------------------
    async def settled(self, within: float) -> dict[str, str]:
        """Each volume's state once no epoch is open and every volume is online or failed (or
        ``within`` has passed)."""
        end = time.monotonic() + within
        while True:
            vols = {n: await self.volume(n) for n in self.volumes}
            states = {n: (v.state if v is not None else "gone") for n, v in vols.items()}
            epochs = [kv.value for kv in (await self.c.store.range(keys.prefix("epoch"))).kvs]
            calm = all(e["phase"] in ("done", "aborted") for e in epochs)
            if calm and all(s in ("online", "failed") for s in states.values()):
                return states
            if time.monotonic() > end:
                return {n: s if calm else f"{s} (epoch open)" for n, s in states.items()}
            await asyncio.sleep(0.2)

    async def through(self, seed: int, plan: tuple[Fault, ...], settle: float) -> Result:
        """Hosts and probes run while the faults of ``plan`` happen; then settle, read back, judge."""
        self.started = time.monotonic()
        hosts = [asyncio.create_task(self.writer(n)) for n in self.volumes]
        hosts += [asyncio.create_task(self.prober(n)) for n in self.volumes]
        try:
            await asyncio.gather(*(self.fault(f) for f in plan))
            await asyncio.sleep(1.0)
            states = await self.settled(settle)
        finally:
            self.stop.set()
            await asyncio.gather(*hosts, return_exceptions=True)
        read = await self.read_back(states)
        return Result(seed, plan, judge(self.history, read, states), tuple(self.missed))

    async def read_back(self, states: dict[str, str]) -> dict[tuple[str, int], int | str]:
        out: dict[tuple[str, int], int | str] = {}
        for name in self.volumes:
            v = await self.volume(name)
            if v is None or states.get(name) != "online":
                continue
            try:
                conn = await self.open(v.owner, name, 5.0)
            except (ConnectRejected, WireError, OSError, TimeoutError) as e:
                for b in range(BLOCKS):
                    out[(name, b)] = f"cannot connect to {v.owner}: {e}"
                continue
            try:
                for b in range(BLOCKS):
                    try:
                        status, raw = await asyncio.wait_for(conn.read(1, b * BLOCK, BLOCK), 5.0)
                    except (WireError, TimeoutError) as e:
                        out[(name, b)] = f"read failed: {e!r}"
                        continue
                    out[(name, b)] = version_of(raw) if status == OK else f"read status {status}"
            finally:
                with contextlib.suppress(Exception):
                    await conn.shutdown()
        return out


async def run_schedule(
    workdir: Path,
    seed: int,
    *,
    volumes: int = 4,
    faults: int = 3,
    span: float = 6.0,
    settle: float = 60.0,
    target: tuple[str, ...] = (),
) -> Result:
    """Start a 3-node cluster in ``workdir`` (simulators, or ``target``: the command of a real
    spdk_tgt), run seed's schedule under load, judge."""
    connect = real_connect if target else sim_connect
    kinds = tuple(k for k in KINDS if k != "slow") if target else KINDS
    async with LocalCluster(workdir, nodes=3, devices=2, device_size=256 << 20, poll_ms=2, target=target) as c:
        await c.wait_ready()
        api = ApiClient(f"unix://{c.api_socket}")
        names_ = [f"v{i}" for i in range(volumes)]
        try:
            for n in names_:
                await api.call("volume_create", {"name": n, "size_bytes": 8 << 20, "redundancy": 2})
                await api.call("export_create", {"volume": n, "protocol": "nvmf", "allow_any_host": True})
        finally:
            await api.close()
        run = Run(Local(c), names_, connect)
        await run.settled(30.0)
        devices = [f"{n.node_id}/{d.device_id}" for n in c.members for d in n.devices]
        plan = schedule(seed, run.c.nodes, devices, faults=faults, span=span, kinds=kinds)
        return await run.through(seed, plan, settle)
