"""Starting and killing SPDK targets for tests: the simulator, or a real spdk_tgt.

`SPDKVIRT_SPDK_TGT` names a command that starts a real spdk_tgt; the harness adds
`-r SOCKET --no-huge -s 1024 --disable-cpumask-locks` so several targets can run side by side.
Only processes started here are ever signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REAL_ENV = "SPDKVIRT_SPDK_TGT"
REAL_ARGS = ["--no-huge", "-s", "1024", "--disable-cpumask-locks"]


def sim_command() -> list[str]:
    return [sys.executable, "-m", "spdkvirt.spdk.sim.main"]


def real_command() -> list[str] | None:
    cmd = os.environ.get(REAL_ENV, "").strip()
    return shlex.split(cmd) if cmd else None


def ping(path: str, timeout: float = 2.0) -> bool:
    """True when a target answers spdk_get_version on path."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(b'{"jsonrpc":"2.0","method":"spdk_get_version","id":1}')
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return False
                buf += chunk
                try:
                    return "result" in json.loads(buf)
                except ValueError:
                    continue
    except OSError:
        return False


@dataclass
class TargetProcess:
    """One target process (simulator or real), restartable with the same socket."""

    kind: str  # "sim" or "real"
    socket_path: str
    log_path: str
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        if self.kind == "sim":
            return [*sim_command(), "-r", self.socket_path, *self.extra_args]
        cmd = real_command()
        assert cmd is not None, f"{REAL_ENV} is not set"
        return [*cmd, "-r", self.socket_path, *REAL_ARGS, *self.extra_args]

    def start(self, timeout: float = 60.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"target exited with {self.proc.returncode}; see {self.log_path}")
            if os.path.exists(self.socket_path) and ping(self.socket_path):
                return
            time.sleep(0.02)
        raise RuntimeError(f"target on {self.socket_path} did not answer within {timeout} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def stop(self) -> None:
        self.kill(signal.SIGTERM if self.kind == "sim" else signal.SIGKILL)


def make_target(kind: str, workdir: Path, name: str, extra_args: list[str] | None = None) -> TargetProcess:
    # UNIX socket paths are limited to ~107 bytes: keep them short
    sock = Path("/tmp") / f"spdkvirt-{os.getpid()}-{abs(hash(str(workdir))) % 10**8}-{name}.sock"
    return TargetProcess(kind, str(sock), str(workdir / f"{name}.log"), list(extra_args or []))
