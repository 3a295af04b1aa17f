"""A whole cluster on one machine: an embedded-store controller and N simulator-backed nodes.

``spdkvirt up`` runs one of these in the foreground; tests and the demo use it in-process. Each
node gets a work directory with its SPDK socket and aio device files, an SPDK simulator process
of its own (or a real SPDK socket given by the operator) and a node agent; the controller serves
the admin API on ``<workdir>/api.sock``. Only processes started here are ever signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spdkvirt.agent.agent import Agent, AgentConfig
from spdkvirt.agent.devices import DeviceSpec
from spdkvirt.api import api_socket
from spdkvirt.controller.master import Master, MasterConfig
from spdkvirt.controller.process import ControllerOptions, serve_controller
from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import SpdkError
from spdkvirt.store import Store, open_store

BASE_PORT = 4420


@dataclass
class SimProcess:
    """An SPDK simulator of this cluster's own."""

    socket: str
    log: str
    poll_ms: float = 0.0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        cmd = [sys.executable, "-m", "spdkvirt.spdk.sim.main", "-r", self.socket, "--rpc-poll-ms", str(self.poll_ms)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait()

    async def ready(self, within: float = 30.0) -> None:
        end = time.monotonic() + within
        while True:
            try:
                async with SpdkClient(self.socket, timeout=5, connect_timeout=1) as c:
                    await c.call("spdk_get_version")
                    return
            except SpdkError:
                if time.monotonic() > end or (self.proc is not None and self.proc.poll() is not None):
                    raise
                await asyncio.sleep(0.05)


@dataclass
class LocalNode:
    node_id: str
    dir: Path
    port: int
    devices: tuple[DeviceSpec, ...]
    sim: SimProcess | None
    socket: str
    agent: Agent | None = None
    client: SpdkClient | None = None
    task: asyncio.Task[None] | None = None


@dataclass
class LocalCluster:
    """``nodes`` simulator-backed nodes (or ``sockets``: real SPDK targets to drive)."""

    workdir: Path
    nodes: int = 3
    devices: int = 2
    device_size: int = 1 << 30
    poll_ms: float = 0.0
    sockets: Sequence[str] = ()
    address: str = "127.0.0.1"
    lease_ttl: int = 2
    members: list[LocalNode] = field(default_factory=list)
    store: Store | None = None
    controller: asyncio.Task[None] | None = None

    @property
    def store_url(self) -> str:
        return f"file://{self.workdir.resolve() / 'db'}"

    @property
    def api_socket(self) -> Path:
        return api_socket(self.workdir)

    def node(self, node_id: str) -> LocalNode:
        return next(n for n in self.members if n.node_id == node_id)

    def _layout(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        count = len(self.sockets) or self.nodes
        for i in range(count):
            nid = f"n{i + 1}"
            d = self.workdir / nid
            d.mkdir(exist_ok=True)
            specs = []
            for k in range(self.devices if not self.sockets else 0):
                path = d / f"d{k + 1}.img"
                if not path.exists():
                    with open(path, "wb") as f:
                        f.truncate(self.device_size)
                specs.append(DeviceSpec.parse(f"{nid}d{k + 1}={path}"))
            sim = None if self.sockets else SimProcess(str(d / "spdk.sock"), str(d / "spdk.log"), self.poll_ms)
            socket = self.sockets[i] if self.sockets else str(d / "spdk.sock")
            self.members.append(LocalNode(nid, d, BASE_PORT + i, tuple(specs), sim, socket))

    async def start(self) -> None:
        self._layout()
        for n in self.members:
            if n.sim is not None:
                n.sim.start()
        await asyncio.gather(*(n.sim.ready() for n in self.members if n.sim is not None))
        self.store = await open_store(self.store_url)
        opts = ControllerOptions(self.store_url, "local", self.lease_ttl, str(self.api_socket))
        self.controller = asyncio.get_running_loop().create_task(serve_controller(self.store, opts))
        await asyncio.gather(*(self.start_agent(n.node_id) for n in self.members))

    async def start_agent(self, node_id: str) -> None:
        n = self.node(node_id)
        assert self.store is not None
        n.client = SpdkClient(n.socket)
        cfg = AgentConfig(node_id, self.address, n.socket, n.devices, n.port, self.lease_ttl)
        n.agent = Agent(cfg, self.store, n.client)
        n.task = asyncio.get_running_loop().create_task(n.agent.run(), name=f"agent {node_id}")

    async def kill_node(self, node_id: str) -> None:
        """The node dies: its simulator is SIGKILLed, its agent stops (its lease runs out)."""
        n = self.node(node_id)
        await self.stop_agent(node_id, abandon=True)
        if n.sim is not None:
            n.sim.kill()

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
        if n.sim is not None:
            n.sim.start()
            await n.sim.ready()
        await self.start_agent(node_id)

    def master(self) -> Master | None:
        return None

    async def close(self) -> None:
        for n in self.members:
            await self.stop_agent(n.node_id)
        if self.controller is not None:
            self.controller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.controller
        for n in self.members:
            if n.sim is not None:
                n.sim.kill()
        if self.store is not None:
            await self.store.close()

    async def __aenter__(self) -> LocalCluster:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["LocalCluster", "Master", "MasterConfig"]
