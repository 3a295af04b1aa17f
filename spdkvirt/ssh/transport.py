"""`SshTransport`: SPDK's RPC UNIX socket on another host, reached over SSH.

It satisfies `spdkvirt.spdk.transport.Transport`: each `open()` is a new channel on the process's
shared SSH connection for that login, to the socket path of the URL, by the way its `via` says:

* `streamlocal` — a `direct-streamlocal@openssh.com` channel (needs AllowStreamLocalForwarding and a
  key without `restrict`/`no-port-forwarding`);
* `forced` — a session running `socat STDIO UNIX-CONNECT:<path>`; with a forced-command key
  (`restrict,command="socat STDIO UNIX-CONNECT:/var/tmp/spdk.sock"`) the server runs its own;
* `auto` (no `via`) — streamlocal, and forced from then on if the server prohibits streamlocal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
from dataclasses import dataclass

import paramiko

from .bridge import Streams, channel_streams
from .connection import SshConnection, connection, drop
from .errors import ChannelOpenRefused, SocketUnreachable, SshError
from .options import SshOptions, default_options
from .streamlocal import open_streamlocal
from .url import SshTarget, parse_ssh_url

log = logging.getLogger(__name__)

# what socat takes literally in UNIX-CONNECT:<path> (it splits addresses on , ! and :)
_SOCAT_SAFE = re.compile(r"[A-Za-z0-9_./@+=%~-]+")


def forced_command(path: str) -> str:
    """The command a forced-command key for `path` runs, and the one the `forced` way asks for."""
    if not _SOCAT_SAFE.fullmatch(path):
        raise SshError(f"socket path {path!r} has characters socat would misread; use via=streamlocal")
    return shlex.join(["socat", "STDIO", f"UNIX-CONNECT:{path}"])


@dataclass(frozen=True, slots=True)
class SshTransport:
    """Opens byte streams to `target.path` on `target`'s host; `options` None means the process default."""

    target: SshTarget
    options: SshOptions | None = None

    @classmethod
    def from_url(cls, url: str, options: SshOptions | None = None) -> SshTransport:
        return cls(parse_ssh_url(url), options)

    async def open(self) -> Streams:
        options = self.options if self.options is not None else default_options()
        conn = await connection(self.target, options)
        opening = asyncio.get_running_loop().run_in_executor(
            None, _open_or_drop, conn, self.target, options.connect_timeout
        )
        try:
            chan, how = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_close_abandoned)
            raise
        return await channel_streams(chan, f"{self} ({how})")

    def __str__(self) -> str:
        return self.target.url()


def _open_or_drop(conn: SshConnection, target: SshTarget, timeout: float) -> tuple[paramiko.Channel, str]:
    """`open_socket_channel`, replacing a connection that could not even be asked (timed out, broken)."""
    try:
        return open_socket_channel(conn, target, timeout)
    except (ChannelOpenRefused, SocketUnreachable):
        raise
    except SshError as exc:
        log.info("ssh_connection_dropped login=%s reason=%s", conn.login, exc)
        drop(conn)
        raise


def _close_abandoned(opening: asyncio.Future[tuple[paramiko.Channel, str]]) -> None:
    """A channel that opened after its opener gave up is closed, not leaked."""
    if not opening.cancelled() and opening.exception() is None:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            opening.result()[0].close()


def open_socket_channel(conn: SshConnection, target: SshTarget, timeout: float) -> tuple[paramiko.Channel, str]:
    """A channel to the target's socket on an open connection (blocking), and how it was reached."""
    if not target.path:
        raise SshError(f"no socket path given for {target.login}")
    refused = ""
    if target.via in ("auto", "streamlocal"):
        try:
            return open_streamlocal(conn.transport, target.path, timeout=timeout), "streamlocal"
        except ChannelOpenRefused as exc:
            if target.via == "streamlocal":
                raise ChannelOpenRefused(
                    f"{target.login}: {exc.message} (is the socket there, and are AllowStreamLocalForwarding "
                    "and an unrestricted key in place?)", kind=exc.kind, code=exc.code, reason=exc.reason,
                ) from None  # fmt: skip
            # OpenSSH answers "open failed" alike for a missing socket and for forwarding not allowed
            refused = exc.reason
            log.info("ssh_streamlocal_refused login=%s path=%s reason=%s trying=forced", target.login, target.path,
                     exc.reason)  # fmt: skip
    try:
        chan = open_forced(conn.transport, target.path, timeout=timeout)
    except SshError as exc:
        if not refused:
            raise
        raise SocketUnreachable(
            f"cannot reach {target.path} on {target.login}: tried streamlocal (refused: {refused}) and forced ({exc})"
        ) from None
    return chan, f"forced after streamlocal was refused: {refused}" if refused else "forced"


def open_forced(transport: paramiko.Transport, path: str, *, timeout: float) -> paramiko.Channel:
    """A session channel running socat to `path` (or the key's forced command)."""
    command = forced_command(path)
    try:
        chan = transport.open_session(timeout=timeout)
    except paramiko.ChannelException as exc:
        raise ChannelOpenRefused(
            f"server refused a session channel: {exc.text} (code {exc.code})", kind="session", code=exc.code,
            reason=exc.text,
        ) from None  # fmt: skip
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SshError(f"could not open a session channel: {exc}") from exc
    try:
        chan.exec_command(command)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            chan.close()
        raise SshError(f"server refused to run {command!r}: {exc}") from exc
    return chan
