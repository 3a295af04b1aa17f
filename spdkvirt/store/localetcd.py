"""Run a throwaway etcd cluster on loopback: for tests, benchmarks and single-machine trials.

Starts ``size`` members of Debian's ``etcd`` (3.4) on free 127.0.0.1 ports (or on ``host``, a local IPv4
address) with data directories on tmpfs (``/dev/shm`` when there), and fast elections. Only the processes
it started are ever signalled; ``stop`` (also run by a finalizer) kills them and removes the data directories.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

_GOARCH = {"aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


class EtcdMissing(RuntimeError):
    """No etcd binary on this machine."""


def etcd_binary() -> str | None:
    """Path of the etcd server binary ($SPDKVIRT_ETCD, else etcd on PATH or in /usr/bin), or None."""
    chosen = os.environ.get("SPDKVIRT_ETCD")
    if chosen is not None:
        return chosen if os.access(chosen, os.X_OK) else None
    return shutil.which("etcd") or next((p for p in ("/usr/bin/etcd",) if os.access(p, os.X_OK)), None)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS client endpoint: CA, server certificate and key; client certificate and key."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _kill_all(procs: list[subprocess.Popen[bytes]], base: Path | None) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


class LocalEtcd:
    """A local etcd cluster of ``size`` members. ``with LocalEtcd(3) as c: ... c.url()``.

    ``host`` is the IPv4 address every member listens on (clients and peers): loopback by default,
    or e.g. a bridge address so processes in network namespaces on that bridge reach the cluster.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        base_dir: str | Path | None = None,
        heartbeat_ms: int = 50,
        election_ms: int = 500,
        tls: TlsFiles | None = None,
        extra_args: tuple[str, ...] = (),
        host: str = "127.0.0.1",
    ) -> None:
        binary = etcd_binary()
        if binary is None:
            raise EtcdMissing("etcd is not installed (Debian: apt-get install etcd-server)")
        self.binary = binary
        self.size = size
        self.tls = tls
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.extra_args = extra_args
        self.host = host
        parent = Path(base_dir) if base_dir else (Path("/dev/shm") if os.path.isdir("/dev/shm") else None)
        self.base = Path(tempfile.mkdtemp(prefix="spdkvirt-etcd-", dir=parent))
        self.members: list[Member] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._token = f"spdkvirt-{os.getpid()}-{self.base.name}"
        self._finalizer = weakref.finalize(self, _kill_all, self._procs, self.base)

    # life cycle

    def start(self, timeout: float = 30.0) -> LocalEtcd:
        ports = _free_ports(2 * self.size, self.host)
        self.members = [
            Member(
                f"m{i}", ports[2 * i], ports[2 * i + 1], self.base / f"m{i}", self.base / f"m{i}.log", host=self.host
            )
            for i in range(self.size)
        ]
        for i in range(self.size):
            self._spawn(i)
        self.wait_ready(timeout)
        return self

    def _args(self, m: Member) -> list[str]:
        scheme = "https" if self.tls else "http"
        cluster = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        args = [
            self.binary,
            f"--name={m.name}",
            f"--data-dir={m.data_dir}",
            f"--listen-client-urls={scheme}://{m.endpoint}",
            f"--advertise-client-urls={scheme}://{m.endpoint}",
            f"--listen-peer-urls={m.peer_url}",
            f"--initial-advertise-peer-urls={m.peer_url}",
            f"--initial-cluster={cluster}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={self._token}",
            f"--heartbeat-interval={self.heartbeat_ms}",
            f"--election-timeout={self.election_ms}",
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
        ]
        if self.tls:
            args += [
                f"--cert-file={self.tls.server_cert}",
                f"--key-file={self.tls.server_key}",
                f"--trusted-ca-file={self.tls.ca}",
                "--client-cert-auth",
            ]
        return args + list(self.extra_args)

    def _spawn(self, index: int) -> None:
        m = self.members[index]
        env = dict(os.environ)
        arch = _GOARCH.get(platform.machine().lower())
        if arch:
            env["ETCD_UNSUPPORTED_ARCH"] = arch
        with open(m.log, "ab") as log:
            m.proc = subprocess.Popen(
                self._args(m),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._procs.append(m.proc)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Signal member ``index`` (SIGKILL by default) and wait for it to exit."""
        m = self.members[index]
        if m.proc is not None and m.proc.poll() is None:
            m.proc.send_signal(sig)
            m.proc.wait(timeout=10)

    def restart(self, index: int, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Start member ``index`` again on its data directory (and wait until it is healthy)."""
        if self.members[index].running:
            raise RuntimeError(f"member {index} is running")
        self._spawn(index)
        if wait:
            self._wait(lambda: self._healthy(self.members[index]), timeout, f"member {index} to rejoin")

    def stop(self) -> None:
        """Kill every member this object started and remove the data directories."""
        self._finalizer()

    def __enter__(self) -> LocalEtcd:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # addresses

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def url(self, namespace: str = "") -> str:
        """An ``etcd://`` URL naming every member (and the TLS files when the cluster uses TLS)."""
        ns = "/" + namespace.strip("/") if namespace else ""
        url = f"etcd://{','.join(self.endpoints)}{ns}"
        if self.tls:
            url += f"?tls=1&cacert={self.tls.ca}&cert={self.tls.client_cert}&key={self.tls.client_key}"
        return url

    # probing (plain HTTP/JSON on the client port: no client library needed)

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls.ca))
        ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return ctx

    def _http(self, m: Member, path: str, body: dict[str, Any] | None = None, timeout: float = 1.0) -> Any:
        scheme = "https" if self.tls else "http"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{scheme}://{m.endpoint}{path}", data=data)
        with urllib.request.urlopen(req, timeout=timeout, context=self._ssl()) as resp:
            return json.loads(resp.read())

    def _healthy(self, m: Member) -> bool:
        if not m.running:
            return False
        try:
            return bool(self._http(m, "/health").get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def _wait(self, ok: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            dead = [m for m in self.members if m.proc is not None and m.proc.poll() is not None]
            for m in dead:
                if m.proc is not None and m.proc.returncode not in (-signal.SIGKILL, -signal.SIGTERM):
                    tail = m.log.read_text(errors="replace")[-2000:] if m.log.exists() else ""
                    raise RuntimeError(f"etcd {m.name} exited with {m.proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every running member reports healthy (it has a leader)."""
        self._wait(lambda: all(self._healthy(m) for m in self.members if m.running), timeout, "etcd to be ready")

    def status(self, index: int) -> dict[str, Any]:
        return dict(self._http(self.members[index], "/v3/maintenance/status", {}))

    def leader_index(self, timeout: float = 10.0) -> int:
        """Index of the member that is raft leader now (waits for one)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.members):
                if not m.running:
                    continue
                try:
                    st = self.status(i)
                except (OSError, ValueError, urllib.error.URLError):
                    continue
                if st.get("leader") and st["leader"] == st.get("header", {}).get("member_id"):
                    return i
            if time.monotonic() > deadline:
                raise TimeoutError("no etcd leader")
            time.sleep(0.05)

    def enable_auth(self, root_password: str) -> None:
        """Create user ``root`` with the root role and turn authentication on."""
        m = next(m for m in self.members if m.running)
        self._http(m, "/v3/auth/user/add", {"name": "root", "password": root_password}, timeout=5)
        self._http(m, "/v3/auth/role/add", {"name": "root"}, timeout=5)
        self._http(m, "/v3/auth/user/grant", {"user": "root", "role": "root"}, timeout=5)
        self._http(m, "/v3/auth/enable", {}, timeout=5)
