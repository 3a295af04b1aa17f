"""An SSH channel as asyncio streams.

The event loop gets one end of a socketpair; two threads per channel copy bytes between the other
end and the channel (paramiko's channels are blocking objects driven by its own transport thread).
Either side closing closes the other: the loop's writer closed -> the channel is closed; the
channel at EOF (remote socket closed, command ended, SSH connection lost) -> the loop sees EOF, or,
when a remote command failed (socat finding no socket, say), that failure as an `SshError` raised
by the reader, with the command's exit status and stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading

import paramiko

from .errors import SshError

log = logging.getLogger(__name__)

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

CHUNK = 256 * 1024
STATUS_WAIT_S = 0.5
_ERRORS = (OSError, EOFError, paramiko.SSHException)


async def channel_streams(chan: paramiko.Channel, name: str) -> Streams:
    """(reader, writer) for the running loop, connected to `chan` until either side closes."""
    ours, theirs = socket.socketpair()
    try:
        reader, writer = await asyncio.open_unix_connection(sock=ours)
    except BaseException:
        ours.close()
        theirs.close()
        chan.close()
        raise
    _Pump(chan, theirs, name, reader, asyncio.get_running_loop()).start()
    return reader, writer


class _Pump:
    def __init__(
        self,
        chan: paramiko.Channel,
        sock: socket.socket,
        name: str,
        reader: asyncio.StreamReader,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.chan = chan
        self.sock = sock
        self.name = name
        self.reader = reader
        self.loop = loop
        self.closing = threading.Event()
        self.down = threading.Thread(target=self.channel_to_socket, name=f"ssh-down {name}", daemon=True)
        self.up = threading.Thread(target=self.socket_to_channel, name=f"ssh-up {name}", daemon=True)

    def start(self) -> None:
        self.down.start()
        self.up.start()

    def channel_to_socket(self) -> None:
        try:
            while data := self.chan.recv(CHUNK):
                self.sock.sendall(data)
        except _ERRORS:
            pass
        finally:
            if not self.closing.is_set():
                self.report_end()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    def socket_to_channel(self) -> None:
        try:
            while data := self.sock.recv(CHUNK):
                self.chan.sendall(data)
        except _ERRORS:
            pass
        finally:
            self.closing.set()
            self.chan.close()
            self.down.join()
            self.sock.close()

    def report_end(self) -> None:
        """The remote end finished first: a failed command's status and stderr reach the reader."""
        chan = self.chan
        status = chan.recv_exit_status() if chan.status_event.wait(STATUS_WAIT_S) else -1
        err = b""
        with contextlib.suppress(*_ERRORS):
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(CHUNK)
        text = err.decode(errors="replace").strip()
        if status in (-1, 0) and not text:
            log.info("ssh_channel_ended name=%s", self.name)
            return
        log.warning("ssh_channel_ended name=%s exit_status=%s stderr=%.500s", self.name, status, text)
        if status not in (-1, 0):
            failure = SshError(f"{self.name}: remote command exited with status {status}: {text or 'no output'}")
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.reader.set_exception, failure)
