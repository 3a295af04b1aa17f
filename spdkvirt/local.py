"""A whole cluster on one machine: an embedded-store controller and N nodes.

``spdkvirt up`` runs one of these in the foreground; tests, the demo and the benchmarks use it
in-process. Each node gets a work directory with its SPDK socket and aio device files, an SPDK
SPDK target of its own (a simulator, or a real spdk_tgt the cluster starts, or a running SPDK whose
socket the operator gives) and a node agent; the
controller serves the admin API on ``<workdir>/api.sock``. Only processes started here are ever
signalled, and a target dies with the process that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spdkvirt.agent.agent import Agent, AgentConfig
from spdkvirt.agent.devices import DeviceSpec
from spdkvirt.api import ApiServer, api_socket
from spdkvirt.api.methods import StoreReadSide
from spdkvirt.api.server import Dispatcher
from spdkvirt.api.service import StoreIdempotencyLog
from spdkvirt.controller.master import Master, MasterConfig
from spdkvirt.controller.service import VolumeService
from spdkvirt.model.records import Fence
from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import SpdkError
from spdkvirt.store import Store, open_store

BASE_PORT = 4420
PORT_FILE = "nvmf_port"
ISCSI_BASE_PORT = 3260
ISCSI_PORT_FILE = "iscsi_port"
STOP_GRACE = 5.0


class NotReady(Exception):
    """The cluster did not come up within its deadline."""


#: runs a command so that it gets SIGKILL when the process that started it ends (Linux's
#: PR_SET_PDEATHSIG, which survives exec): ``python -c LAUNCH PARENT_PID ARGV...``
LAUNCH = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def with_parent(cmd: Sequence[str]) -> list[str]:
    """``cmd`` made to end with this process (on Linux; as it is elsewhere)."""
    if sys.platform != "linux":
        return list(cmd)
    return [sys.executable, "-c", LAUNCH, str(os.getpid()), *cmd]


def _port_free(port: int, address: str) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
        return True


def _any_free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


async def wait_spdk(path: str, within: float = 30.0, alive: Callable[[], bool] = lambda: True) -> None:
    """Wait until an SPDK target answers on ``path``."""
    end = time.monotonic() + within
    while True:
        try:
            async with SpdkClient(path, timeout=5, connect_timeout=1) as c:
                await c.call("spdk_get_version")
                return
        except SpdkError:
            if time.monotonic() > end or not alive():
                raise
            await asyncio.sleep(0.05)


@dataclass
class SpdkProcess:
    """An SPDK target of this cluster's own: the simulator, or ``command`` (a real spdk_tgt and
    its options; ``-r SOCKET`` is added)."""

    socket: str
    log: str
    poll_ms: float = 0.0
    command: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        if self.command:
            cmd = [*self.command, "-r", self.socket]
        else:
            cmd = [
                sys.executable,
                "-m",
                "spdkvirt.spdk.sim.main",
                "-r",
                self.socket,
                "--rpc-poll-ms",
                str(self.poll_ms),
            ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                with_parent(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, then SIGKILL if it has not ended within ``grace`` seconds."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(proc.wait, grace)
        self.kill()

    async def ready(self, within: float = 30.0) -> None:
        await wait_spdk(self.socket, within, lambda: self.proc is None or self.proc.poll() is None)


@dataclass
class LocalNode:
    node_id: str
    dir: Path
    port: int
    iscsi_port: int
    devices: tuple[DeviceSpec, ...]
    process: SpdkProcess | None
    socket: str
    agent: Agent | None = None
    client: SpdkClient | None = None
    task: asyncio.Task[None] | None = None
    fence: Fence | None = None


@dataclass
class LocalCluster:
    """``nodes`` nodes, each with an SPDK target of its own (the simulator, or ``target``: the
    command of a real spdk_tgt) or driving one of ``sockets`` (SPDK targets that run already), each with
    ``devices`` aio device files of ``device_size`` bytes in its directory.

    NVMe/TCP ports: ``base_port`` + i when free, else any free port, and iSCSI portals likewise
    from 3260; a node keeps its ports in its directory, so a cluster started again on the same
    work directory listens where it did."""

    workdir: Path
    nodes: int = 3
    devices: int = 2
    device_size: int = 1 << 30
    poll_ms: float = 0.0
    sockets: Sequence[str] = ()
    target: Sequence[str] = ()
    address: str = "127.0.0.1"
    lease_ttl: int = 2
    base_port: int = BASE_PORT
    resync_interval: float = 2.0
    members: list[LocalNode] = field(default_factory=list)
    store: Store | None = None
    controller: asyncio.Task[None] | None = None
    current: Master | None = None

    @property
    def store_url(self) -> str:
        return f"file://{self.workdir.resolve() / 'db'}"

    @property
    def api_socket(self) -> Path:
        return api_socket(self.workdir)

    def node(self, node_id: str) -> LocalNode:
        return next(n for n in self.members if n.node_id == node_id)

    def _port(self, d: Path, i: int, base: int = 0, file: str = PORT_FILE) -> int:
        saved = d / file
        with contextlib.suppress(OSError, ValueError):
            return int(saved.read_text())
        port = (base or self.base_port) + i
        taken = {p for n in self.members for p in (n.port, n.iscsi_port)}
        if port in taken or not _port_free(port, self.address):
            port = _any_free_port(self.address)
        saved.write_text(f"{port}\n")
        return port

    def _layout(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        count = len(self.sockets) or self.nodes
        for i in range(count):
            nid = f"n{i + 1}"
            d = self.workdir / nid
            d.mkdir(exist_ok=True)
            specs = []
            for k in range(self.devices):
                path = d / f"d{k + 1}.img"
                if not path.exists():
                    with open(path, "wb") as f:
                        f.truncate(self.device_size)
                specs.append(DeviceSpec.parse(f"{nid}d{k + 1}={path.resolve()}"))
            log = str(d / "spdk.log")
            process = None if self.sockets else SpdkProcess(str(d / "spdk.sock"), log, self.poll_ms, tuple(self.target))
            sock = self.sockets[i] if self.sockets else str(d / "spdk.sock")
            ports = self._port(d, i), self._port(d, i, ISCSI_BASE_PORT, ISCSI_PORT_FILE)
            # every target is on this machine: the controller fences a node whose agent is gone
            # through its SPDK socket, before its volumes get other owners
            fence = Fence(f"unix://{Path(sock).resolve()}", "listeners") if "://" not in sock else None
            self.members.append(LocalNode(nid, d, *ports, tuple(specs), process, sock, fence=fence))

    async def start(self) -> None:
        # the store first: its lock keeps a second cluster off this work directory
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = await open_store(self.store_url)
        self._layout()
        for n in self.members:
            if n.process is not None:
                n.process.start()
        await asyncio.gather(
            *(n.process.ready() if n.process is not None else wait_spdk(n.socket) for n in self.members)
        )
        self.start_controller()
        await asyncio.gather(*(self.start_agent(n.node_id) for n in self.members))

    # ---- the controller --------------------------------------------------------------------
    def start_controller(self, name: str = "local") -> Master:
        """A controller on this cluster's store: it campaigns, leads, and serves the API."""
        assert self.store is not None
        master = Master(self.store, MasterConfig(name, lease_ttl=self.lease_ttl))
        self.current = master
        self.controller = asyncio.get_running_loop().create_task(self._serve(master), name=f"controller {name}")
        return master

    async def _serve(self, master: Master) -> None:
        assert self.store is not None
        dispatcher = Dispatcher(
            VolumeService(master), StoreReadSide(self.store), idempotency=StoreIdempotencyLog(self.store)
        )
        async with ApiServer(dispatcher, unix_path=self.api_socket):
            await master.run()

    async def stop_controller(self, *, crash: bool = False) -> None:
        """Stop the controller; ``crash``: as if its process died (its leader lease runs out by
        itself rather than being revoked)."""
        if crash and self.current is not None and self.current.lease is not None:
            self.current.lease.abandon()
        if self.controller is not None:
            self.controller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.controller
        self.controller = None
        self.current = None

    def master(self) -> Master | None:
        """The controller's master (leading or campaigning), if one runs."""
        return self.current

    async def wait_ready(self, within: float = 30.0) -> Master:
        """Until the master leads and every node is up, alive, with all its devices usable."""
        end = time.monotonic() + within
        want = sum(len(n.devices) for n in self.members)
        while True:
            m = self.current
            if m is not None and m.leading.is_set() and m.mirror is not None:
                cluster = m.cluster()
                usable = sum(1 for d in cluster.devices.values() if d.usable)
                if all(cluster.node_ok(n.node_id) for n in self.members) and usable >= want:
                    return m
            if self.controller is not None and self.controller.done():
                self.controller.result()
            for n in self.members:
                if n.task is not None and n.task.done():
                    n.task.result()
            if time.monotonic() > end:
                raise NotReady(f"the cluster in {self.workdir} was not ready within {within:g} s")
            await asyncio.sleep(0.05)

    # ---- nodes -------------------------------------------------------------------------------
    async def start_agent(self, node_id: str) -> None:
        n = self.node(node_id)
        assert self.store is not None
        n.client = SpdkClient(n.socket)
        cfg = AgentConfig(node_id, self.address, n.socket, n.devices, n.port, self.lease_ttl,
                          resync_interval=self.resync_interval, iscsi_port=n.iscsi_port, fence=n.fence)  # fmt: skip
        n.agent = Agent(cfg, self.store, n.client)
        n.task = asyncio.get_running_loop().create_task(n.agent.run(), name=f"agent {node_id}")

    async def kill_node(self, node_id: str) -> None:
        """The node dies: its SPDK target is SIGKILLed, its agent stops (its lease runs out)."""
        n = self.node(node_id)
        await self.stop_agent(node_id, abandon=True)
        if n.process is not None:
            n.process.kill()

    async def stop_agent(self, node_id: str, *, abandon: bool = False) -> None:
        n = self.node(node_id)
        if n.agent is not None and abandon and n.agent.lease is not None:
            n.agent.lease.abandon()
        if n.task is not None:
            n.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await n.task
        if n.client is not None:
            await n.client.close()
        n.task = n.agent = n.client = None

    async def restart_node(self, node_id: str) -> None:
        n = self.node(node_id)
        if n.process is not None:
            n.process.start()
            await n.process.ready()
        await self.start_agent(node_id)

    async def close(self) -> None:
        for n in self.members:
            await self.stop_agent(n.node_id)
        await self.stop_controller()
        await asyncio.gather(*(n.process.stop() for n in self.members if n.process is not None))
        if self.store is not None:
            await self.store.close()
            self.store = None

    async def __aenter__(self) -> LocalCluster:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["LocalCluster", "Master", "MasterConfig", "NotReady", "wait_spdk"]
