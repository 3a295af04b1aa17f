"""A private test network: one Linux bridge in the root namespace and one network namespace per node.

``Network.create(["n1", "n2"])`` picks a free /24 in 10.200.0.0/13 (one no address or route on the
machine overlaps), creates bridge ``svb<tag>`` with ``10.X.Y.1/24`` and, per node, namespace
``svn<tag>-<node>`` joined by a veth pair: the host end ``svh<tag><i>`` is a bridge port, the peer is
moved into the namespace as ``eth0`` with ``10.X.Y.(10+i)/24``; ``lo`` is up. ``<tag>`` is 5 random hex
digits shared by everything one network creates.

``partition(node)`` sets the node's host end down (the node reaches nobody and nobody reaches it);
``heal(node)`` sets it up again. ``teardown()`` deletes exactly what this object created and is safe to
call twice; a process still inside one of its namespaces then (only the test run puts any there) is
SIGKILLed first, so the namespace really goes. Every network records what it created in a state file
under ``/run/spdkvirt-cluster`` while it lives, so ``Network.reap_stale()`` can remove what a killed
test run left behind (only networks whose creating process is gone), with the processes and temporary
directories handed to ``adopt``. Nothing else on the machine is ever changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.procfs import start_time

POOL = ipaddress.IPv4Network("10.200.0.0/13")
STATE_DIR = Path("/run/spdkvirt-cluster")
FIRST_HOST = 10
MAX_NODES = 200
_NAME = 15  # IFNAMSIZ - 1


class NetworkError(RuntimeError):
    """A network could not be created or torn down."""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _ip_json(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True).stdout
    data = json.loads(out) if out.strip() else []
    return [d for d in data if isinstance(d, dict)]


def link_exists(name: str) -> bool:
    """True when the root namespace has a link called ``name``."""
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True, check=False).returncode == 0


def namespace_exists(name: str) -> bool:
    return name in namespaces()


def namespaces() -> set[str]:
    """Names of the network namespaces ``ip netns`` knows."""
    return {str(d.get("name")) for d in _ip_json("netns", "list")}


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network an address or a route on this machine covers (the default route aside)."""
    used: list[ipaddress.IPv4Network] = []
    for link in _ip_json("-4", "addr", "show"):
        infos = link.get("addr_info")
        for info in infos if isinstance(infos, list) else []:
            with contextlib.suppress(KeyError, ValueError, TypeError):
                used.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for route in _ip_json("-4", "route", "show", "table", "all"):
        dst = str(route.get("dst", ""))
        if dst in ("", "default"):
            continue
        with contextlib.suppress(ValueError):
            used.append(ipaddress.IPv4Network(dst, strict=False))
    return [n for n in used if n.prefixlen > 0]


def pick_subnet(rng: random.Random) -> ipaddress.IPv4Network:
    """A random /24 of POOL that overlaps nothing routed or addressed on this machine."""
    used = _used_networks()
    subnets = list(POOL.subnets(new_prefix=24))
    for _ in range(200):
        candidate = rng.choice(subnets)
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise NetworkError(f"no free /24 in {POOL}")


@contextlib.contextmanager
def _state_lock() -> Iterator[None]:
    """Serialises subnet choice and bridge creation between test runs on this machine."""
    STATE_DIR.mkdir(mode=0o700, exist_ok=True)
    with open(STATE_DIR / "lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True, slots=True)
class NodeNet:
    """One node of the network: its namespace, its address and the host end of its veth pair."""

    name: str
    namespace: str
    address: str
    host_veth: str


class Network:
    """A bridge and one namespace per node; see the module docstring."""

    def __init__(self, tag: str, subnet: ipaddress.IPv4Network, members: Sequence[NodeNet]) -> None:
        self.tag = tag
        self.subnet = subnet
        self.bridge = f"svb{tag}"
        self.members = {m.name: m for m in members}
        self._created_links: list[str] = []
        self._created_namespaces: list[str] = []
        self._adopted_pids: list[tuple[int, str | None]] = []
        self._adopted_paths: list[str] = []
        self._down: set[str] = set()
        self._closed = False

    # creation

    @classmethod
    def create(cls, names: Sequence[str], *, rng: random.Random | None = None) -> Network:
        """Create the bridge and a namespace per name; on failure remove whatever was created."""
        if not names or len(set(names)) != len(names):
            raise ValueError(f"node names must be unique and at least one: {names!r}")
        if len(names) > MAX_NODES:
            raise ValueError(f"at most {MAX_NODES} nodes")
        for n in names:
            if not n or not all(c.isalnum() or c in "-_" for c in n) or len(n) > 40:
                raise ValueError(f"bad node name {n!r}: letters, digits, - and _ only")
        rng = rng or random.Random()
        with _state_lock():
            existing = namespaces()
            while True:
                tag = f"{rng.getrandbits(20):05x}"
                taken = (STATE_DIR / f"{tag}.json").exists() or link_exists(f"svb{tag}")
                if not taken and not any(ns.startswith(f"svn{tag}-") for ns in existing):
                    break
            subnet = pick_subnet(rng)
            hosts = list(subnet.hosts())
            members = [
                NodeNet(n, f"svn{tag}-{n}", str(hosts[FIRST_HOST - 1 + i]), f"svh{tag}{i}") for i, n in enumerate(names)
            ]
            net = cls(tag, subnet, members)
            try:
                net._save_state()
                net._make_bridge(str(hosts[0]))
            except BaseException:
                net.teardown()
                raise
        try:
            for i, m in enumerate(members):
                net._make_member(m, f"svp{tag}{i}")
        except BaseException:
            net.teardown()
            raise
        return net

    def _make_bridge(self, address: str) -> None:
        _ip("link", "add", "name", self.bridge, "type", "bridge")
        self._created_links.append(self.bridge)
        self._save_state()
        _ip("addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def _make_member(self, m: NodeNet, peer: str) -> None:
        assert len(m.host_veth) <= _NAME and len(peer) <= _NAME
        _ip("netns", "add", m.namespace)
        self._created_namespaces.append(m.namespace)
        self._save_state()
        _ip("link", "add", m.host_veth, "type", "veth", "peer", "name", peer)
        self._created_links.append(m.host_veth)
        self._save_state()
        _ip("link", "set", m.host_veth, "master", self.bridge)
        _ip("link", "set", m.host_veth, "up")
        _ip("link", "set", peer, "netns", m.namespace)
        _ip("-n", m.namespace, "link", "set", peer, "name", "eth0")
        _ip("-n", m.namespace, "addr", "add", f"{m.address}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip("-n", m.namespace, "link", "set", "eth0", "up")
        _ip("-n", m.namespace, "link", "set", "lo", "up")

    # addresses and commands

    @property
    def host_address(self) -> str:
        """The bridge's address: the root namespace as seen from every node."""
        return str(next(self.subnet.hosts()))

    @property
    def names(self) -> list[str]:
        return list(self.members)

    def member(self, name: str) -> NodeNet:
        try:
            return self.members[name]
        except KeyError:
            raise KeyError(f"no node {name!r} in network {self.tag} ({', '.join(self.members)})") from None

    def address(self, name: str) -> str:
        return self.member(name).address

    def namespace(self, name: str) -> str:
        return self.member(name).namespace

    def wrap(self, name: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the node's namespace (``ip`` execs it: the pid is the command's own)."""
        return ["ip", "netns", "exec", self.namespace(name), *argv]

    def run(self, name: str, argv: Sequence[str], *, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the node's namespace to completion; output captured, no check."""
        wrapped = self.wrap(name, argv)
        return subprocess.run(
            wrapped, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )

    # faults

    def partition(self, name: str) -> None:
        """Cut the node off: its bridge port goes down."""
        _ip("link", "set", self.member(name).host_veth, "down")
        self._down.add(name)

    def heal(self, name: str) -> None:
        """Undo ``partition``: its bridge port comes up."""
        _ip("link", "set", self.member(name).host_veth, "up")
        self._down.discard(name)

    def cut(self, name: str, address: str) -> None:
        """Cut the node off from one address only (a blackhole route in its namespace): from etcd,
        say, while its data path to the other nodes stays up."""
        self.run(name, ["ip", "route", "replace", "blackhole", f"{address}/32"]).check_returncode()

    def uncut(self, name: str, address: str) -> None:
        self.run(name, ["ip", "route", "del", "blackhole", f"{address}/32"])

    def partitioned(self, name: str) -> bool:
        return name in self._down

    def adopt(self, *, pid: int | None = None, path: str | Path | None = None) -> None:
        """Have ``reap_stale`` also end ``pid`` (if it is still the same process) and remove ``path``
        should this test run die without a teardown: for what lives outside the namespaces (etcd)."""
        if pid is not None:
            self._adopted_pids.append((pid, start_time(pid)))
        if path is not None:
            if not _removable(str(path)):
                raise ValueError(f"{path}: only temporary directories named {_TEMP_PREFIXES} are adopted")
            self._adopted_paths.append(str(path))
        self._save_state()

    # teardown

    def teardown(self) -> None:
        """Delete the namespaces, veths and bridge this object created (idempotent)."""
        if self._closed:
            return
        errors: list[str] = []
        for ns in list(self._created_namespaces):
            errors += _delete_namespace(ns)
        for link in [*self._created_links[1:], *self._created_links[:1]]:
            errors += _delete_link(link)
        if errors:
            self._save_state()
            raise NetworkError("; ".join(errors))
        self._created_namespaces.clear()
        self._created_links.clear()
        self._closed = True
        with contextlib.suppress(FileNotFoundError):
            self._state_file.unlink()

    def remaining(self) -> list[str]:
        """What of this network still exists on the machine (empty after a teardown)."""
        left = [f"link {x}" for x in [self.bridge, *(m.host_veth for m in self.members.values())] if link_exists(x)]
        current = namespaces()
        return left + [f"netns {m.namespace}" for m in self.members.values() if m.namespace in current]

    # state file, for reap_stale

    @property
    def _state_file(self) -> Path:
        return STATE_DIR / f"{self.tag}.json"

    def _save_state(self) -> None:
        STATE_DIR.mkdir(mode=0o700, exist_ok=True)
        state = {
            "pid": os.getpid(),
            "start_time": start_time(os.getpid()),
            "links": self._created_links,
            "namespaces": self._created_namespaces,
            "pids": self._adopted_pids,
            "paths": self._adopted_paths,
        }
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self._state_file)

    @staticmethod
    def reap_stale() -> list[str]:
        """Remove networks whose creating process is gone (a killed test run); returns what was removed."""
        removed: list[str] = []
        if not STATE_DIR.is_dir():
            return removed
        with _state_lock():
            for f in sorted(STATE_DIR.glob("*.json")):
                try:
                    state = json.loads(f.read_text())
                    pid, started = int(state["pid"]), state["start_time"]
                    links, spaces = list(state["links"]), list(state["namespaces"])
                    adopted = [(int(p), t) for p, t in state.get("pids", [])]
                    paths = [str(x) for x in state.get("paths", [])]
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                if started is not None and start_time(pid) == started:
                    continue  # its test run is still going
                for p, t in adopted:
                    if t is not None and start_time(p) == t:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(p, signal.SIGKILL)
                        removed.append(f"pid {p}")
                for x in paths:
                    if _removable(x):
                        shutil.rmtree(x, ignore_errors=True)
                errors: list[str] = []
                for ns in spaces:
                    if str(ns).startswith("svn"):
                        errors += _delete_namespace(str(ns))
                for link in [*links[1:], *links[:1]]:
                    if str(link).startswith(("svb", "svh")):
                        errors += _delete_link(str(link))
                if not errors:
                    f.unlink(missing_ok=True)
                    removed += [*spaces, *links]
        return removed


_TEMP_PREFIXES = ("spdkvirt-", "svk")


def _removable(path: str) -> bool:
    p = Path(path)
    return p.is_absolute() and ".." not in p.parts and len(p.parts) > 2 and p.name.startswith(_TEMP_PREFIXES)


def namespace_pids(ns: str) -> list[int]:
    """Pids of the processes inside namespace ``ns`` (empty when it does not exist)."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(x) for x in out.stdout.split() if x.isdigit()] if out.returncode == 0 else []


def _delete_namespace(ns: str) -> list[str]:
    if not namespace_exists(ns):
        return []
    for pid in namespace_pids(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    try:
        _ip("netns", "del", ns)
    except subprocess.CalledProcessError as e:
        return [f"ip netns del {ns}: {e.stderr.strip()}"]
    return []


def _delete_link(name: str) -> list[str]:
    if not link_exists(name):
        return []
    try:
        _ip("link", "del", name)
    except subprocess.CalledProcessError as e:
        if link_exists(name):
            return [f"ip link del {name}: {e.stderr.strip()}"]
    return []
