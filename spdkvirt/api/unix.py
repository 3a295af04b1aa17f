"""The admin API on a UNIX socket, framed like SPDK's: JSON values back to back, no newline needed.

A reader collects bytes until one complete JSON object or array has arrived (:class:`Framer`), hands
it to the dispatcher and writes the answer the same way. Requests of one connection run side by side
(up to :data:`MAX_IN_FLIGHT`), so a client may pipeline. Access is by file permission: the socket is
made mode 0600, owned by the server's user; there is no token.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import socket
import stat
from pathlib import Path

from spdkvirt.api.errors import ParseError
from spdkvirt.api.server import Connections, Dispatcher, encode

#: largest single message accepted
MAX_MESSAGE = 1 << 20
#: deepest nesting a message may have on the wire
MAX_WIRE_DEPTH = 128
#: requests of one connection handled at once
MAX_IN_FLIGHT = 16
_READ = 1 << 16
_OUTSIDE = re.compile(rb'[{}\[\]"]')
_INSIDE = re.compile(rb'["\\]')
_SPACE = b" \t\r\n"


class FramingError(ValueError):
    """The byte stream is not a sequence of JSON objects and arrays: the connection cannot go on."""


class Framer:
    """Splits a byte stream into complete top-level JSON objects/arrays, scanning each byte once."""

    def __init__(self, max_message: int = MAX_MESSAGE, max_depth: int = MAX_WIRE_DEPTH) -> None:
        self.buf = bytearray()
        self.max_message = max_message
        self.max_depth = max_depth
        self._pos = 0
        self._depth = 0
        self._in_string = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every message they complete. Raises :class:`FramingError`."""
        self.buf += data
        out: list[bytes] = []
        while True:
            message = self._next()
            if message is None:
                break
            out.append(message)
        if len(self.buf) > self.max_message:
            raise FramingError(f"message longer than {self.max_message} bytes")
        return out

    def pending(self) -> bool:
        """Whether part of a message has arrived."""
        return bool(self.buf.strip(_SPACE))

    def _next(self) -> bytes | None:
        if self._depth == 0 and not self._in_string:
            start = len(self.buf) - len(self.buf.lstrip(_SPACE))
            del self.buf[:start]
            self._pos = 0
            if not self.buf:
                return None
            if self.buf[0] not in b"{[":
                raise FramingError("a message must be a JSON object or array")
        while self._pos < len(self.buf):
            if self._in_string:
                m = _INSIDE.search(self.buf, self._pos)
                if m is None:
                    self._pos = len(self.buf)
                    return None
                if m.group() == b"\\":
                    if m.end() >= len(self.buf):
                        self._pos = m.start()
                        return None
                    self._pos = m.end() + 1
                    continue
                self._in_string = False
                self._pos = m.end()
                continue
            m = _OUTSIDE.search(self.buf, self._pos)
            if m is None:
                self._pos = len(self.buf)
                return None
            self._pos = m.end()
            ch = m.group()
            if ch == b'"':
                self._in_string = True
            elif ch in b"{[":
                self._depth += 1
                if self._depth > self.max_depth:
                    raise FramingError(f"nested deeper than {self.max_depth} levels")
            else:
                self._depth -= 1
                if self._depth <= 0:
                    self._depth = 0
                    message = bytes(self.buf[: self._pos])
                    del self.buf[: self._pos]
                    self._pos = 0
                    return message
        return None


def _framing_error(e: FramingError) -> bytes:
    err = ParseError(f"Parse error: {e}", {"reason": str(e)})
    return encode({"jsonrpc": "2.0", "id": None, "error": err.to_wire()})


class _Connection:
    def __init__(self, dispatcher: Dispatcher, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.dispatcher = dispatcher
        self.reader = reader
        self.writer = writer
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        framer = Framer()
        try:
            while data := await self.reader.read(_READ):
                try:
                    messages = framer.feed(data)
                except FramingError as e:
                    await self._write(_framing_error(e))
                    return
                for message in messages:
                    await self.slots.acquire()
                    task = asyncio.create_task(self._answer(message))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
            if self.tasks:
                await asyncio.wait(set(self.tasks))
        except (ConnectionError, OSError):
            pass
        finally:
            for task in self.tasks:
                task.cancel()
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()

    async def _answer(self, message: bytes) -> None:
        try:
            answer = await self.dispatcher.handle_bytes(message)
            if answer is not None:
                await self._write(answer)
        finally:
            self.slots.release()

    async def _write(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            self.writer.write(data)
            await self.writer.drain()


def _clear_stale(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse when a server answers there or it is not a socket."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as e:
        if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise FileExistsError(f"{path}: another server is listening there")


async def serve_unix(
    dispatcher: Dispatcher, path: str | os.PathLike[str], connections: Connections | None = None
) -> asyncio.Server:
    """Listen on a UNIX socket at ``path`` (mode 0600); a stale socket file there is replaced."""
    where = Path(path)
    _clear_stale(where)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(str(where))
        os.chmod(where, 0o600)
    except BaseException:
        sock.close()
        raise

    conns = connections or Connections()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await conns.serve(writer, _Connection(dispatcher, reader, writer).run)

    return await asyncio.start_unix_server(on_connect, sock=sock, limit=MAX_MESSAGE)
