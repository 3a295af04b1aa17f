"""An SSH channel as asyncio streams, driven from the event loop itself.

paramiko's transport thread receives packets into the channel's buffer and signals a pipe
(`Channel.fileno()`); the loop watches that pipe and takes what is buffered, and writes go straight
into the channel without blocking (`timeout 0`): the only thread between the loop and the TCP socket
is paramiko's own. When the peer's window is full, what is left waits in a buffer (reported by
`get_write_buffer_size`, so `drain()` waits too) and is retried every millisecond until the window
opens. EOF from the channel (remote socket closed, command ended, SSH connection lost) reaches the
reader as EOF or, when a remote command failed (socat finding no socket, say), as an `SshError`
naming its exit status and stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import paramiko

from .errors import SshError

log = logging.getLogger(__name__)

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

CHUNK = 256 * 1024
STATUS_WAIT_S = 0.5
STDERR_KEPT = 16 * 1024
WINDOW_RETRY_S = 0.001
HIGH_WATER = 256 * 1024
PACKET = 32 * 1024  # paramiko sends at most one packet (max 32 KiB) per send()
_ERRORS = (OSError, EOFError, paramiko.SSHException)


async def channel_streams(chan: paramiko.Channel, name: str) -> Streams:
    """(reader, writer) for the running loop, connected to `chan` until either side closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**16, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    try:
        transport = ChannelTransport(loop, chan, protocol, name)
    except BaseException:
        with contextlib.suppress(*_ERRORS):
            chan.close()
        raise
    await transport.started
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


class ChannelTransport(asyncio.Transport):
    """An asyncio transport over one paramiko channel; all methods run on the loop's thread."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, chan: paramiko.Channel, protocol: asyncio.Protocol, name: str
    ) -> None:
        super().__init__(extra={"peername": name, "channel": chan})
        self._loop = loop
        self._chan = chan
        self._protocol = protocol
        self._name = name
        self._fd = chan.fileno()
        chan.settimeout(0.0)
        self._out = bytearray()
        self._retry: asyncio.TimerHandle | None = None
        self._stderr = bytearray()
        self._reading = True
        self._eof = False
        self._closing = False
        self._lost = False
        self._write_paused = False
        self._eof_written = False  # write_eof called: shut the channel for writing once _out is sent
        self._high = HIGH_WATER
        self._low = HIGH_WATER // 4
        self.started: asyncio.Future[None] = loop.create_future()
        loop.call_soon(self._start)

    # -- lifecycle ---------------------------------------------------------------------------------

    def _start(self) -> None:
        try:
            self._protocol.connection_made(self)
            if not self._closing:
                self._loop.add_reader(self._fd, self._read_ready)
        except BaseException as exc:
            self.started.set_exception(exc)
            self._connection_lost(None)
            raise
        self.started.set_result(None)

    def _stop_reading(self) -> None:
        if self._reading and not self._eof:
            self._loop.remove_reader(self._fd)
        self._reading = False

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        try:
            if self._retry is not None:
                self._retry.cancel()
            self._reading = False
            self._loop.remove_reader(self._fd)
            with contextlib.suppress(*_ERRORS):  # the connection may be broken already
                self._chan.close()
        finally:
            try:
                self._protocol.connection_lost(exc)
            finally:
                self._protocol = asyncio.Protocol()

    # -- reading -----------------------------------------------------------------------------------

    def _read_ready(self) -> None:
        chan = self._chan
        try:
            data = chan.recv(CHUNK)
        except TimeoutError:
            # the pipe also signals stderr: keep it for the report and stop it waking us
            self._take_stderr()
            return
        except _ERRORS as exc:
            self._fatal(exc)
            return
        if data:
            self._protocol.data_received(data)
            return
        self._eof = True
        self._loop.remove_reader(self._fd)
        if self._closing:
            return
        threading.Thread(target=self._await_status, name=f"ssh-status {self._name}", daemon=True).start()

    def _take_stderr(self) -> None:
        """What the remote command wrote to stderr, the last STDERR_KEPT bytes of it."""
        with contextlib.suppress(*_ERRORS):
            while self._chan.recv_stderr_ready():
                self._stderr += self._chan.recv_stderr(CHUNK)
        del self._stderr[:-STDERR_KEPT]

    def _await_status(self) -> None:
        """Off the loop: the remote end finished; wait briefly for the exit status the server may send."""
        chan = self._chan
        status = chan.recv_exit_status() if chan.status_event.wait(STATUS_WAIT_S) else -1
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._remote_finished, status)

    def _remote_finished(self, status: int) -> None:
        if self._lost:
            return
        self._take_stderr()
        text = self._stderr.decode(errors="replace").strip()
        if status not in (-1, 0):
            log.warning("ssh_channel_ended name=%s exit_status=%s stderr=%.500s", self._name, status, text)
            self._fatal(SshError(f"{self._name}: remote command exited with status {status}: {text or 'no output'}"))
            return
        log.info("ssh_channel_ended name=%s stderr=%.500s", self._name, text)
        if not self._protocol.eof_received():
            self.close()

    # -- writing -----------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof_written:
            raise RuntimeError("cannot write after write_eof()")
        if self._closing or self._lost:
            return
        if not data:
            return
        if self._out:
            self._out += data
        else:
            sent = self._send(memoryview(data))
            if sent < 0:
                return
            if sent < len(data):
                self._out += memoryview(data)[sent:]
        if self._out and self._retry is None:
            self._retry = self._loop.call_later(WINDOW_RETRY_S, self._flush)
        self._maybe_pause()

    def _send(self, data: memoryview) -> int:
        """Bytes sent without blocking (-1: the channel failed and the transport is going down)."""
        sent = 0
        try:
            while sent < len(data):
                n = self._chan.send(bytes(data[sent : sent + PACKET]))
                if n == 0:
                    raise SshError(f"{self._name}: channel closed for writing")
                sent += n
        except TimeoutError:
            pass
        except _ERRORS as exc:
            self._fatal(exc)
            return -1
        return sent

    def _flush(self) -> None:
        self._retry = None
        if self._lost:
            return
        sent = self._send(memoryview(self._out))
        if sent < 0:
            return
        del self._out[:sent]
        if self._out:
            self._retry = self._loop.call_later(WINDOW_RETRY_S, self._flush)
            return
        self._maybe_resume()
        if self._eof_written:
            self._shutdown_write()
        if self._closing:
            self._loop.call_soon(self._connection_lost, None)

    def _maybe_pause(self) -> None:
        if not self._write_paused and len(self._out) > self._high:
            self._write_paused = True
            self._protocol.pause_writing()

    def _maybe_resume(self) -> None:
        if self._write_paused and len(self._out) <= self._low:
            self._write_paused = False
            self._protocol.resume_writing()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """EOF to the peer after what is still buffered (at once when nothing is)."""
        if self._eof_written or self._closing or self._lost:
            return
        self._eof_written = True
        if not self._out:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        try:
            self._chan.shutdown_write()
        except _ERRORS as exc:
            self._fatal(exc)

    def get_write_buffer_size(self) -> int:
        return len(self._out)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = HIGH_WATER if high is None else high
        self._low = self._high // 4 if low is None else low
        self._maybe_pause()

    # -- the rest of asyncio.Transport -------------------------------------------------------------

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        if self._reading and not self._closing:
            self._stop_reading()

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            if not self._eof:
                self._loop.add_reader(self._fd, self._read_ready)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._out:
            self._loop.call_soon(self._connection_lost, None)

    def abort(self) -> None:
        self._closing = True
        self._out.clear()
        self._loop.call_soon(self._connection_lost, None)

    def _fatal(self, exc: Exception) -> None:
        self._closing = True
        self._out.clear()
        self._loop.call_soon(self._connection_lost, exc if isinstance(exc, OSError) else SshError(str(exc)))

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol
