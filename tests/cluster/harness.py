"""A test cluster: etcd, and per node a network namespace, device files and an SPDK target.

``with Cluster(workdir) as c:`` gives nodes n1, n2, n3 (by default), each with its own namespace and
address on a private bridge, two sparse device files and a simulator (``spdkvirt.spdk.sim.main``)
running *inside* the namespace, so its NVMe/TCP listeners are reachable at the node's address only.
Its RPC socket is a file (``<workdir>/<node>/spdk.sock``), reachable from the test process too. etcd
(``LocalEtcd``, 1 or 3 members) listens on the bridge address, reachable from every namespace and
from the test process. With ``$SPDKVIRT_SPDK_TGT`` set, a real spdk_tgt runs instead of the simulator.

Further processes (a node agent, ...) start in a node's namespace with ``start_in``; ``kill_node``
SIGKILLs all of a node's processes, ``partition``/``heal`` take its link down and up. ``close`` (also
run on exit and on SIGTERM/SIGINT) stops processes first, then etcd, then removes the network.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType

from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.methods import Spdk
from spdkvirt.store.localetcd import LocalEtcd, etcd_binary
from tests.cluster.netns import Network, namespace_pids
from tests.cluster.procs import Processes, on_exit, wait_for
from tests.etcd_cluster import TEST_OPTIONS
from tests.support.targets import REAL_ARGS, ping, real_command, sim_command

MiB = 1 << 20
DEFAULT_NODES = ("n1", "n2", "n3")
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes


@dataclass(frozen=True, slots=True)
class ClusterEnv:
    """What the machine offers the cluster tests (the ``cluster_env`` fixture)."""

    ip: str
    etcd: str
    reaped: tuple[str, ...]  # leftovers of killed earlier runs, removed at session start


def missing_tools() -> list[str]:
    """Why cluster tests cannot run here: not root, no ``ip``, no etcd (empty when they can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("network namespaces need root")
    if shutil.which("ip") is None:
        problems.append("iproute2 (ip) is not installed")
    if etcd_binary() is None:
        problems.append("etcd is not installed (apt-get install etcd-server)")
    return problems


@dataclass(frozen=True, slots=True)
class Device:
    """A device of a node: its id (``d0``, ``d1``...) and its backing file."""

    id: str
    path: Path


@dataclass(frozen=True, slots=True)
class Node:
    """What a test needs to know about one node."""

    name: str
    namespace: str
    address: str
    spdk_socket: str
    devices: tuple[Device, ...]
    dir: Path

    @property
    def spdk_process(self) -> str:
        """The name of the node's SPDK target in ``Cluster.procs``."""
        return f"{self.name}-spdk"


class Cluster:
    """Nodes in network namespaces, each with an SPDK target, and etcd; see the module docstring."""

    def __init__(
        self,
        workdir: str | Path,
        nodes: Sequence[str] = DEFAULT_NODES,
        *,
        devices: int = 2,
        device_size: int = 256 * MiB,
        poll_ms: float = 0,
        etcd_members: int = 1,
        target_args: Sequence[str] = (),
        store_options: str = TEST_OPTIONS,
        start_timeout: float = 60.0,
    ) -> None:
        if etcd_members not in (1, 3):
            raise ValueError("etcd_members is 1 or 3")
        self.workdir = Path(workdir).absolute()
        self.node_names = list(nodes)
        self.devices_per_node = devices
        self.device_size = device_size
        self.poll_ms = poll_ms
        self.etcd_members = etcd_members
        self.target_args = list(target_args)
        self.store_options = store_options
        self.start_timeout = start_timeout
        self.real_spdk = real_command()
        self.nodes: dict[str, Node] = {}
        self.network: Network | None = None
        self.etcd: LocalEtcd | None = None
        self.procs = Processes(self.workdir / "logs")
        self._socket_dir: Path | None = None
        self._cancel = on_exit(self.close)
        self._closed = False

    # life cycle

    def start(self) -> Cluster:
        """Create the network, the device files, the targets and etcd; wait until all answer."""
        try:
            self.network = Network.create(self.node_names)
            for name in self.node_names:
                self.nodes[name] = self._make_node(name)
            for name in self.node_names:
                self._spawn_target(name)
            self.etcd = LocalEtcd(self.etcd_members, host=self.network.host_address)
            self.network.adopt(path=self.etcd.base)
            self.etcd.start(timeout=self.start_timeout)
            for i in range(self.etcd_members):
                self._adopt_etcd(i)
            for name in self.node_names:
                self._wait_target(name)
        except BaseException:
            self.close()
            raise
        return self

    def _make_node(self, name: str) -> Node:
        assert self.network is not None
        d = self.workdir / name
        d.mkdir(parents=True, exist_ok=True)
        devices = []
        for k in range(self.devices_per_node):
            path = d / f"d{k}.img"
            with open(path, "wb") as f:
                f.truncate(self.device_size)
            devices.append(Device(f"d{k}", path))
        sock = d / "spdk.sock"
        if len(str(sock)) > _MAX_SOCKET_PATH:
            if self._socket_dir is None:
                self._socket_dir = Path(tempfile.mkdtemp(prefix=f"svk{self.network.tag}-"))
                self.network.adopt(path=self._socket_dir)
            sock = self._socket_dir / f"{name}.sock"
        return Node(name, self.network.namespace(name), self.network.address(name), str(sock), tuple(devices), d)

    def target_argv(self, node: str) -> list[str]:
        """The command of the node's SPDK target: the simulator, or the real spdk_tgt."""
        sock = self.node(node).spdk_socket
        if self.real_spdk is not None:
            return [*self.real_spdk, "-r", sock, *REAL_ARGS, *self.target_args]
        poll = ["--rpc-poll-ms", str(self.poll_ms)] if self.poll_ms else []
        return [*sim_command(), "-r", sock, *poll, *self.target_args]

    def _spawn_target(self, node: str) -> None:
        n = self.node(node)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(n.spdk_socket)
        self.start_in(node, n.spdk_process, self.target_argv(node))

    def _wait_target(self, node: str) -> None:
        n = self.node(node)

        def answers() -> bool:
            if not self.procs.alive(n.spdk_process):
                tail = self.procs.log_tail(n.spdk_process)
                raise RuntimeError(f"SPDK target of {node} exited ({self.procs.returncode(n.spdk_process)}):\n{tail}")
            return os.path.exists(n.spdk_socket) and ping(n.spdk_socket, timeout=1.0)

        wait_for(answers, within=self.start_timeout, interval=0.02, what=f"SPDK target of {node} on {n.spdk_socket}")

    def close(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL), stop etcd, remove the network (idempotent). A step
        that fails does not keep the next ones from running; the first error is raised at the end."""
        if self._closed:
            return
        self._closed = True
        self._cancel()
        steps: list[Callable[[], object]] = [self.procs.close]
        if self.etcd is not None:
            steps.append(self.etcd.stop)
        if self.network is not None:
            steps.append(self.network.teardown)
        if self._socket_dir is not None:
            steps.append(partial(shutil.rmtree, self._socket_dir, ignore_errors=True))
        errors: list[Exception] = []
        for step in steps:
            try:
                step()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # what tests read

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(f"no node {name!r} (nodes: {', '.join(self.nodes)})") from None

    @property
    def net(self) -> Network:
        assert self.network is not None, "cluster not started"
        return self.network

    @property
    def host_address(self) -> str:
        """The bridge address: the test process (and etcd) as seen from the nodes."""
        return self.net.host_address

    @property
    def started_etcd(self) -> LocalEtcd:
        assert self.etcd is not None, "cluster not started"
        return self.etcd

    @property
    def store_url(self) -> str:
        """``etcd://`` URL of the cluster's etcd (on the bridge address), with ``store_options``."""
        url = self.started_etcd.url()
        return f"{url}?{self.store_options}" if self.store_options else url

    def client(self, node: str, *, timeout: float = 30.0) -> SpdkClient:
        """An RPC client of the node's SPDK target (use as ``async with``)."""
        return SpdkClient(self.node(node).spdk_socket, timeout=timeout)

    @contextlib.asynccontextmanager
    async def spdk(self, node: str, *, rpc_timeout: float = 30.0) -> AsyncIterator[Spdk]:
        """``async with cluster.spdk("n1") as spdk: await spdk.bdev_get_bdevs()`` (per-call deadline
        ``rpc_timeout`` s)."""
        async with self.client(node, timeout=rpc_timeout) as client:
            yield Spdk(client)

    # processes in a node

    def start_in(
        self, node: str, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the node's namespace as process ``name`` (``env`` adds to the environment);
        its output goes to ``<workdir>/logs/<name>.log``. ``kill_node`` kills it with the node."""
        return self.procs.start(name, self.net.wrap(node, argv), env=env, group=node)

    def run_in(self, node: str, argv: Sequence[str], *, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a short command in the node's namespace to completion (output captured, no check)."""
        return self.net.run(node, argv, timeout=timeout)

    def agent_argv(self, node: str, *extra: str) -> list[str]:
        """``spdkvirt agent`` for the node: its id, SPDK socket, the store, its address, one
        ``--device ID=PATH`` per device file, then ``extra``."""
        n = self.node(node)
        argv = [sys.executable, "-m", "spdkvirt.cli.main", "agent", "--node-id", n.name]
        argv += ["--spdk-socket", n.spdk_socket, "--store", self.store_url, "--address", n.address]
        for d in n.devices:
            argv += ["--device", f"{d.id}={d.path}"]
        return [*argv, *extra]

    def start_agent(self, node: str, *extra: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``agent_argv(node, *extra)`` in the node's namespace as process ``<node>-agent``."""
        return self.start_in(node, f"{node}-agent", self.agent_argv(node, *extra), env=env)

    # faults

    def kill_node(self, node: str) -> list[str]:
        """SIGKILL the node's SPDK target and every process started in its namespace; returns their names.
        The node's network stays up (see ``partition``)."""
        names = self.procs.kill_group(node, signal.SIGKILL)
        for pid in namespace_pids(self.node(node).namespace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return names

    def stop_sim(self, node: str, sig: int = signal.SIGKILL) -> None:
        """Signal the node's SPDK target (SIGKILL by default) and wait for it to end."""
        name = self.node(node).spdk_process
        if not self.procs.alive(name):
            return
        if sig == signal.SIGKILL:
            self.procs.kill(name)
        else:
            self.procs.kill(name, sig, wait=30.0)

    def restart_sim(self, node: str, *, sig: int = signal.SIGKILL, wait: bool = True) -> None:
        """Stop the node's SPDK target if it runs (with ``sig``), start it again on the same socket and,
        with ``wait``, wait until it answers. A simulator starts empty; a real target too."""
        self.stop_sim(node, sig)
        self._spawn_target(node)
        if wait:
            self._wait_target(node)

    def sim_alive(self, node: str) -> bool:
        return self.procs.alive(self.node(node).spdk_process)

    def kill_etcd(self, index: int = 0, sig: int = signal.SIGKILL) -> None:
        """Signal etcd member ``index`` (SIGKILL by default) and wait for it to exit."""
        self.started_etcd.kill(index, sig)

    def restart_etcd(self, index: int = 0, *, wait: bool = True) -> None:
        """Start etcd member ``index`` again on its data (and, with ``wait``, until it is healthy)."""
        self.started_etcd.restart(index, wait=wait, timeout=self.start_timeout)
        self._adopt_etcd(index)

    def _adopt_etcd(self, index: int) -> None:
        proc = self.started_etcd.members[index].proc
        if proc is not None:
            self.net.adopt(pid=proc.pid)

    def partition(self, node: str) -> None:
        """Cut the node off the network (its bridge port goes down): nobody reaches it, it reaches nobody."""
        self.net.partition(node)

    def heal(self, node: str) -> None:
        self.net.heal(node)
