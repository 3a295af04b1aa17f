"""A real OpenSSH server for tests, everything in one temp directory.

`Sshd.start(directory, ...)` writes a host key, an sshd_config, two client keys (one unrestricted, one
bound to `socat STDIO UNIX-CONNECT:<forced_socket>` by a `restrict,command=...` line), an
authorized_keys and a known_hosts line for the server, then runs `/usr/sbin/sshd -D -e -f <config>`
(inside `ip netns exec NAME` when `netns` is given) and waits until it listens. `stop()` signals only
the process it started and is safe to call twice (from `finally`, `atexit`, a signal handler).

No pytest here: harnesses that build network namespaces use it too, also from the shell:

    python -m tests.support.sshd start DIR [--address A] [--port P] [--netns NS] [--forced-socket S]
    python -m tests.support.sshd stop DIR

`start` prints a JSON object with the paths and the pid; `stop` reads the pid file in DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.procfs import children_of

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = "/run/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
DEFAULT_FORCED_SOCKET = "/var/tmp/spdk.sock"


def ssh_unavailable_reason() -> str | None:
    """Why a real sshd cannot be run here, or None when it can."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed"
    for tool in ("ssh-keygen", "socat"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "sshd for tests needs root (it switches to the logged-in user)"
    return None


def ssh_available() -> bool:
    return ssh_unavailable_reason() is None


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (in this network namespace)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def host_pattern(address: str, port: int) -> str:
    """How known_hosts and ssh name a server: `addr` on port 22, `[addr]:port` elsewhere."""
    return address if port == 22 else f"[{address}]:{port}"


def keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair at path (private) and path.pub; returns the public key line."""
    for p in (path, path.with_name(path.name + ".pub")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def key_type_and_blob(public_line: str) -> str:
    """`ssh-ed25519 AAAA...` without the comment."""
    return " ".join(public_line.split()[:2])


@dataclass
class Sshd:
    """One running sshd and the files that go with it."""

    directory: Path
    address: str
    port: int
    user: str
    netns: str | None
    forced_socket: str | None
    config_path: Path
    log_path: Path
    pid_path: Path
    host_key_path: Path
    host_public_key: str
    key_path: Path
    forced_key_path: Path | None
    authorized_keys: Path
    known_hosts: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        directory: str | Path,
        *,
        address: str = "127.0.0.1",
        port: int | None = None,
        netns: str | None = None,
        forced_socket: str | None = DEFAULT_FORCED_SOCKET,
        user: str | None = None,
        timeout: float = 15.0,
    ) -> Sshd:
        """Prepare `directory` (created if missing), start sshd and wait until it listens.

        Without `port`: a free port when not in a namespace, 22 inside one.
        """
        reason = ssh_unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        d = Path(directory).resolve()
        d.mkdir(parents=True, exist_ok=True)
        if port is None:
            port = 22 if netns else free_port(address)
        user = user or getpass.getuser()
        os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)

        host_key = d / "ssh_host_ed25519_key"
        host_public = key_type_and_blob(keygen(host_key, "sshd-host"))
        client_key = d / "id_ed25519"
        client_public = key_type_and_blob(keygen(client_key, "spdkvirt-test"))
        lines = [client_public + " spdkvirt-test"]
        forced_key: Path | None = None
        if forced_socket is not None:
            forced_key = d / "id_ed25519_forced"
            forced_public = key_type_and_blob(keygen(forced_key, "spdkvirt-forced"))
            lines.append(f'restrict,command="socat STDIO UNIX-CONNECT:{forced_socket}" {forced_public} spdkvirt-forced')
        authorized = d / "authorized_keys"
        authorized.write_text("\n".join(lines) + "\n")
        authorized.chmod(0o600)

        known = d / "known_hosts"
        names = [host_pattern(address, port)]
        if port == 22 and ":" in address:
            names.append(f"[{address}]:22")
        known.write_text(f"{','.join(names)} {host_public}\n")

        listen = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        pid_path = d / "sshd.pid"
        sftp = SFTP_SERVER if os.access(SFTP_SERVER, os.X_OK) else "internal-sftp"
        config = d / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {listen}",
                    f"HostKey {host_key}",
                    f"PidFile {pid_path}",
                    f"AuthorizedKeysFile {authorized}",
                    f"AllowUsers {user}",
                    "StrictModes no",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "PermitRootLogin prohibit-password",
                    "AllowStreamLocalForwarding yes",
                    "X11Forwarding no",
                    "PrintMotd no",
                    "UseDNS no",
                    "MaxStartups 200",
                    "MaxSessions 100",
                    "LogLevel VERBOSE",
                    f"Subsystem sftp {sftp}",
                    "",
                ]
            )
        )
        log_path = d / "sshd.log"
        with contextlib.suppress(FileNotFoundError):
            pid_path.unlink()
        log_path.write_bytes(b"")
        cmd = [SSHD, "-D", "-e", "-f", str(config)]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        server = cls(
            directory=d,
            address=address,
            port=port,
            user=user,
            netns=netns,
            forced_socket=forced_socket,
            config_path=config,
            log_path=log_path,
            pid_path=pid_path,
            host_key_path=host_key,
            host_public_key=host_public,
            key_path=client_key,
            forced_key_path=forced_key,
            authorized_keys=authorized,
            known_hosts=known,
        )
        with open(log_path, "ab") as log:
            server.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            server.wait_listening(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def host(self) -> str:
        return f"[{self.address}]" if ":" in self.address else self.address

    def wait_listening(self, timeout: float) -> None:
        """Until sshd logs that it listens (works inside a namespace too)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            if "Server listening on" in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.02)
        raise RuntimeError(f"sshd did not listen on {self.address}:{self.port} within {timeout} s")

    def url(self, path: str | None = None, *, forced: bool = False, user: str | None = None) -> str:
        """`ssh://user@host:port/path` for the SPDK socket at path (the forced socket when omitted)."""
        path = path or self.forced_socket or DEFAULT_FORCED_SOCKET
        if not path.startswith("/"):
            raise ValueError(f"socket path must be absolute: {path!r}")
        via = "?via=forced" if forced else ""
        return f"ssh://{user or self.user}@{self.host}:{self.port}{path}{via}"

    def identity(self, *, forced: bool = False) -> Path:
        if forced:
            if self.forced_key_path is None:
                raise ValueError("this sshd was started without a forced-command key")
            return self.forced_key_path
        return self.key_path

    def ssh_args(self, *, forced: bool = False) -> list[str]:
        """OpenSSH client options that reach this server with its own keys and known_hosts."""
        return [
            "-i",
            str(self.identity(forced=forced)),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-p",
            str(self.port),
            f"{self.user}@{self.address}",
        ]

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes (children of the listener started here)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return sorted(children_of(self.proc.pid))

    def drop_connections(self) -> int:
        """Kill every client connection (the server keeps listening); how many there were."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the sshd started here (SIGKILL if it lingers); idempotent."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()

    def describe(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "netns": self.netns,
            "known_hosts": str(self.known_hosts),
            "key_path": str(self.key_path),
            "forced_key_path": str(self.forced_key_path) if self.forced_key_path else None,
            "forced_socket": self.forced_socket,
            "config": str(self.config_path),
            "log": str(self.log_path),
            "pid_file": str(self.pid_path),
        }


def stop_directory(directory: str | Path, timeout: float = 10.0) -> bool:
    """Stop the sshd whose pid file is in directory (started by `start`); False when none runs."""
    pid_file = Path(directory) / "sshd.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except FileNotFoundError:
        return False
    # sshd rewrites its title to "sshd: /usr/sbin/sshd -D -e -f CONFIG [listener] ..."
    config = str((Path(directory) / "sshd_config").resolve())
    if f"-f {config}".encode() not in cmdline:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.sshd")
    sub = parser.add_subparsers(dest="cmd", required=True)
    start = sub.add_parser("start")
    start.add_argument("directory")
    start.add_argument("--address", default="127.0.0.1")
    start.add_argument("--port", type=int)
    start.add_argument("--netns")
    start.add_argument("--forced-socket", default=DEFAULT_FORCED_SOCKET)
    start.add_argument("--user")
    stop = sub.add_parser("stop")
    stop.add_argument("directory")
    args = parser.parse_args(argv)
    if args.cmd == "start":
        server = Sshd.start(
            args.directory,
            address=args.address,
            port=args.port,
            netns=args.netns,
            forced_socket=args.forced_socket,
            user=args.user,
        )
        print(json.dumps(server.describe()))
        return 0
    return 0 if stop_directory(args.directory) else 1


if __name__ == "__main__":
    sys.exit(main())
