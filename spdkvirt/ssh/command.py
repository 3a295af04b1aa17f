"""Running one command on a host over SSH, for out-of-band actions (fencing a node, say).

`await run_command("ssh://root@node1", "pkill -x spdk_tgt", timeout=10)` -> CommandResult. It uses
the process's shared connection for that login. A forced-command key runs its own command instead:
out-of-band actions need a key that may run what is asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paramiko

from .connection import SshConnection, drop, get_connection
from .errors import ChannelOpenRefused, CommandTimeout, SshError
from .options import SshOptions, default_options
from .url import SshTarget, parse_ssh_url

CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


async def run_command(
    url_or_target: str | SshTarget,
    command: str | Sequence[str],
    *,
    options: SshOptions | None = None,
    timeout: float,  # noqa: ASYNC109 - the command's deadline, reported as CommandTimeout, not a cancellation
    stdin: bytes = b"",
) -> CommandResult:
    """Run `command` (a shell string, or argv joined with shell quoting) and collect its output.

    Raises CommandTimeout when it has not finished within `timeout` seconds (counted from the start,
    login included; the remote command is left alone), other SshError when it cannot be started.
    """
    target = url_or_target if isinstance(url_or_target, SshTarget) else parse_ssh_url(url_or_target, require_path=False)
    text = command if isinstance(command, str) else shlex.join(command)
    opts = options if options is not None else default_options()
    deadline = time.monotonic() + timeout
    work = asyncio.to_thread(_run, target, opts, text, stdin, deadline)
    try:
        async with asyncio.timeout(timeout + 1.0):
            return await work
    except TimeoutError as exc:
        if isinstance(exc, CommandTimeout):
            raise
        raise CommandTimeout(f"{target.login}: {text!r} did not finish within {timeout} s") from None


def _run(target: SshTarget, options: SshOptions, command: str, stdin: bytes, deadline: float) -> CommandResult:
    conn = get_connection(target, options)
    chan = _session(conn, max(0.1, deadline - time.monotonic()))
    try:
        chan.exec_command(command)
        out, err = bytearray(), bytearray()
        readers = [
            threading.Thread(target=_drain, args=(chan.recv, out), daemon=True),
            threading.Thread(target=_drain, args=(chan.recv_stderr, err), daemon=True),
        ]
        for reader in readers:
            reader.start()
        if stdin:
            chan.sendall(stdin)
        chan.shutdown_write()
        if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
            raise CommandTimeout(f"{target.login}: {command!r} did not finish in time")
        for reader in readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        if not chan.exit_status_ready() or any(r.is_alive() for r in readers):
            raise CommandTimeout(f"{target.login}: {command!r} did not finish in time")
        return CommandResult(chan.recv_exit_status(), bytes(out), bytes(err))
    except (paramiko.SSHException, OSError, EOFError) as exc:
        if isinstance(exc, SshError):
            raise
        raise SshError(f"{target.login}: running {command!r} failed: {exc}") from exc
    finally:
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            chan.close()


def _session(conn: SshConnection, timeout: float) -> paramiko.Channel:
    try:
        return conn.transport.open_session(timeout=timeout)
    except paramiko.ChannelException as exc:
        raise ChannelOpenRefused(
            f"{conn.login}: server refused a session channel: {exc.text}", kind="session", code=exc.code,
            reason=exc.text,
        ) from None  # fmt: skip
    except (paramiko.SSHException, EOFError) as exc:
        drop(conn)  # timed out or broken: the next command logs in afresh
        raise SshError(f"{conn.login}: could not open a session channel: {exc}") from exc


def _drain(recv: Callable[[int], bytes], into: bytearray) -> None:
    try:
        while data := recv(CHUNK):
            into += data
    except (OSError, EOFError, paramiko.SSHException):
        pass
