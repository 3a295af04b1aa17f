"""Asyncio JSON-RPC 2.0 client for SPDK over a UNIX socket or TCP.

* Pipelining: any number of requests are in flight on one connection; one reader task matches
  replies to callers by id, in whatever order SPDK sends them (async handlers answer late). SPDK
  picks requests up on its RPC poller tick and answers everything that arrived together in the
  same tick, so `gather()`/`batch()` write many requests at once and cost one round trip.
* Deadlines are wall-clock (the event loop's monotonic clock), per call, with a client default.
* After a timeout the connection is retired: calls already in flight on it keep waiting for their
  own replies, new calls open a fresh connection. A dropped connection fails every call in flight on
  it with `SpdkConnectionLost`; the next call reconnects. Nothing is ever resent automatically: a
  call whose outcome is unknown (`SpdkTimeout`, `SpdkConnectionLost`) is the caller's to re-observe.
* SPDK's error replies become the typed exceptions of `errors`, carrying code, message, data,
  method and the params exactly as sent.

A client belongs to one event loop and is not thread-safe; `rpcpy` offers a blocking facade that is.
"""

# ruff: noqa: ASYNC109 - calls take a `timeout`: only the client can tell its own deadline (connection
# retired, SpdkTimeout: outcome unknown) from a cancellation, which an outer asyncio.timeout would be.

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .errors import (
    SpdkConnectError,
    SpdkConnectionLost,
    SpdkError,
    SpdkProtocolError,
    SpdkTimeout,
    rpc_error,
)
from .transport import Transport, parse_address

log = logging.getLogger("spdkvirt.spdk.client")

Params = Mapping[str, Any] | None

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
_READ_SIZE = 256 * 1024
_MAX_REPLY = 64 * 1024 * 1024  # SPDK's send buffer tops out at 32 MiB


@dataclass(frozen=True, slots=True)
class Request:
    """One JSON-RPC call: `params` None means the request carries no params member."""

    method: str
    params: Params = None


RequestLike = Request | tuple[str, Params] | str


def _request(item: RequestLike) -> Request:
    if isinstance(item, Request):
        return item
    if isinstance(item, str):
        return Request(item)
    method, params = item
    return Request(method, params)


# -- framing -------------------------------------------------------------------------------------

# A complete string, or a structural character; a lone quote is the start of an unfinished string.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|["{}\[\]]', re.DOTALL)
_SPACE = re.compile(rb"[ \t\r\n]*")


class JsonStream:
    """Splits a byte stream into the JSON objects/arrays SPDK writes back to back.

    Scanning resumes where it stopped, so a large reply arriving in pieces is scanned once.
    """

    def __init__(self, max_size: int = _MAX_REPLY) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._depth = 0
        self._max = max_size

    def feed(self, data: bytes) -> list[Any]:
        """Add bytes; return every value they complete. Raises SpdkProtocolError on non-JSON."""
        buf = self._buf
        buf += data
        values: list[Any] = []
        while True:
            if self._depth == 0 and self._pos == 0:
                skip = _SPACE.match(buf)
                if skip is not None and skip.end():
                    del buf[: skip.end()]
                if not buf:
                    return values
                if buf[0] not in b"{[":
                    raise SpdkProtocolError(f"reply does not start a JSON object: {bytes(buf[:40])!r}")
                if buf.rstrip()[-1] in (0x7D, 0x5D):  # } or ]
                    # the usual case, one whole reply per read: parse without scanning
                    try:
                        values.append(json.loads(buf))
                    except ValueError:
                        pass  # several values, or one not complete yet: scan
                    else:
                        buf.clear()
                        return values
            end = self._scan()
            if end is None:
                if len(buf) > self._max:
                    raise SpdkProtocolError(f"reply larger than {self._max} bytes")
                return values
            try:
                values.append(json.loads(buf[:end]))
            except ValueError as exc:
                raise SpdkProtocolError(f"reply is not JSON: {exc}") from exc
            del buf[:end]
            self._pos = 0

    def _scan(self) -> int | None:
        """Index just past the value at the start of the buffer, None while it is incomplete."""
        buf = self._buf
        for m in _TOKEN.finditer(buf, self._pos):
            start, end = m.span()
            ch = buf[start]
            if ch == 0x22:  # a string
                if end - start == 1:  # unterminated: wait for more at its start
                    self._pos = start
                    return None
            elif ch in (0x7B, 0x5B):
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth <= 0:
                    self._depth = 0
                    return end
        self._pos = len(buf)
        return None


# -- one connection ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lost:
    """What a call in flight learns when its connection breaks."""

    kind: type[SpdkConnectionLost]
    message: str


Outcome = dict[str, Any] | _Lost


class _Connection:
    """A connection, its pending calls by id, and the task that reads replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self._reader = reader
        self._writer = writer
        self.name = name
        self.pending: dict[int, asyncio.Future[Outcome]] = {}
        self.retired = False
        self.lost: _Lost | None = None
        self._task = asyncio.get_running_loop().create_task(self._read_loop(), name=f"spdk-rpc {name}")

    @property
    def usable(self) -> bool:
        return not self.retired and self.lost is None and not self._writer.is_closing()

    @property
    def finished(self) -> bool:
        return self._task.done()

    def send(self, ids: Sequence[int], payload: bytes) -> list[asyncio.Future[Outcome]]:
        loop = asyncio.get_running_loop()
        futures = []
        for rid in ids:
            fut: asyncio.Future[Outcome] = loop.create_future()
            self.pending[rid] = fut
            futures.append(fut)
        self._writer.write(payload)
        return futures

    @property
    def buffered(self) -> bool:
        """Whether written bytes are still waiting for the socket (drain before waiting for replies)."""
        return self._writer.transport.get_write_buffer_size() > 0

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        """Stop reading and close the socket (idempotent; calls still pending learn it is lost)."""
        self.retired = True
        self._task.cancel()
        self._writer.close()

    def abort(self, message: str) -> None:
        """The connection broke under a writer: fail every call in flight now, then close."""
        self._fail(_Lost(SpdkConnectionLost, message))
        self.close()

    async def wait_closed(self) -> None:
        await asyncio.wait({self._task})
        try:
            await self._writer.wait_closed()
        except (OSError, RuntimeError):
            pass

    async def _read_loop(self) -> None:
        stream = JsonStream()
        lost = _Lost(SpdkConnectionLost, "connection closed by the client")
        try:
            while True:
                chunk = await self._reader.read(_READ_SIZE)
                if not chunk:
                    lost = _Lost(SpdkConnectionLost, "connection closed by the server")
                    return
                for value in stream.feed(chunk):
                    self._dispatch(value)
        except SpdkProtocolError as exc:
            lost = _Lost(SpdkProtocolError, exc.message)
        except OSError as exc:
            lost = _Lost(SpdkConnectionLost, f"connection failed: {exc}")
        finally:
            self._fail(lost)
            self._writer.close()

    def _dispatch(self, value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                self._dispatch_one(item)
        else:
            self._dispatch_one(value)

    def _dispatch_one(self, reply: Any) -> None:
        if not isinstance(reply, dict):
            raise SpdkProtocolError(f"reply is not an object: {reply!r:.200}")
        rid = reply.get("id")
        if type(rid) is not int:
            # SPDK answers a request it could not parse as a request with "id": null; ours never are.
            log.warning("spdk_reply_without_id conn=%s reply=%.300s", self.name, reply)
            return
        fut = self.pending.pop(rid, None)
        if fut is None:
            log.debug("spdk_late_reply conn=%s id=%d", self.name, rid)
        elif not fut.done():
            fut.set_result(reply)

    def _fail(self, lost: _Lost) -> None:
        if self.lost is None:
            self.lost = lost
            if self.pending:
                log.info(
                    "spdk_connection_lost conn=%s in_flight=%d reason=%s", self.name, len(self.pending), lost.message
                )
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_result(lost)


# -- the client ----------------------------------------------------------------------------------


class SpdkClient:
    """Calls SPDK's JSON-RPC methods; see the module docstring for pipelining, deadlines, reconnect."""

    def __init__(
        self,
        address: str | Transport,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.transport: Transport = parse_address(address) if isinstance(address, str) else address
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.connections_opened = 0
        self._conn: _Connection | None = None
        self._conns: list[_Connection] = []
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SpdkClient({self.transport})"

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.usable

    async def __aenter__(self) -> SpdkClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection; calls still in flight fail with SpdkConnectionLost."""
        self._closed = True
        conns, self._conns, self._conn = self._conns, [], None
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()

    async def call(self, method: str, params: Params = None, *, timeout: float | None = None) -> Any:
        """Call one method and return its result; raises SpdkRpcError or SpdkTransportError."""
        [outcome] = await self._exchange([Request(method, params)], timeout, as_array=False)
        if isinstance(outcome, SpdkError):
            raise outcome
        return outcome

    async def gather(
        self,
        requests: Iterable[RequestLike],
        *,
        timeout: float | None = None,
        return_exceptions: bool = False,
        as_array: bool = False,
    ) -> list[Any]:
        """Send all requests in one write and wait for every reply (one deadline for all).

        Results come back in request order. With `return_exceptions` an error takes its request's
        place in the list; otherwise the first error is raised once every reply is in. `as_array`
        sends a JSON-RPC batch array instead of pipelined requests (SPDK answers it with one array).
        SPDK reads up to 32 KiB of requests per poller tick, so very large batches take several ticks.
        """
        reqs = [_request(r) for r in requests]
        if not reqs:
            return []
        outcomes = await self._exchange(reqs, timeout, as_array=as_array)
        if not return_exceptions:
            for outcome in outcomes:
                if isinstance(outcome, SpdkError):
                    raise outcome
        return outcomes

    def batch(self, *, timeout: float | None = None, return_exceptions: bool = False) -> Batch:
        """Collect calls in an `async with` block and send them together when it ends."""
        return Batch(self, timeout=timeout, return_exceptions=return_exceptions)

    # -- internals ---------------------------------------------------------------------------------

    async def _exchange(self, reqs: Sequence[Request], timeout: float | None, as_array: bool) -> list[Any]:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(f"{self!r} is bound to another event loop")
        budget = self.timeout if timeout is None else timeout
        deadline = None if budget is None else loop.time() + budget
        encoded, ids = self._encode(reqs)
        payload = b"[" + b",".join(encoded) + b"]" if as_array else b"".join(encoded)

        conn = await self._connection(deadline, reqs[0].method)
        futures = conn.send(ids, payload)
        try:
            try:
                if conn.buffered:
                    async with asyncio.timeout_at(deadline):
                        await conn.drain()
                waits = [f for f in futures if not f.done()]
                if waits:
                    remaining = None if deadline is None else max(0.0, deadline - loop.time())
                    await asyncio.wait(waits, timeout=remaining)
            except TimeoutError:
                pass
            except OSError as exc:
                conn.abort(f"sending failed: {exc}")
            if any(not f.done() for f in futures):
                conn.retired = True
                log.info("spdk_call_timeout conn=%s method=%s after=%ss", conn.name, reqs[0].method, budget)
            return [self._outcome(req, raw, fut, budget) for req, raw, fut in zip(reqs, encoded, futures, strict=True)]
        finally:
            for rid in ids:
                conn.pending.pop(rid, None)
            if (conn.retired or conn.lost is not None) and not conn.pending:
                conn.close()

    def _encode(self, reqs: Sequence[Request]) -> tuple[list[bytes], list[int]]:
        encoded: list[bytes] = []
        ids: list[int] = []
        for req in reqs:
            rid = next(self._ids)
            obj: dict[str, Any] = {"jsonrpc": "2.0", "method": req.method, "id": rid}
            if req.params is not None:
                obj["params"] = req.params
            encoded.append(json.dumps(obj, separators=(",", ":"), allow_nan=False).encode())
            ids.append(rid)
        return encoded, ids

    @staticmethod
    def _outcome(req: Request, raw: bytes, fut: asyncio.Future[Outcome], budget: float | None) -> Any:
        if not fut.done():
            return SpdkTimeout(f"no reply within {budget} s; the call may or may not have run", req.method)
        reply = fut.result()
        if isinstance(reply, _Lost):
            return reply.kind(f"{reply.message}; the call may or may not have run", req.method)
        if "error" in reply:
            sent = json.loads(raw).get("params") if req.params is not None else None
            return rpc_error(req.method, sent, reply["error"])
        if "result" not in reply:
            return SpdkProtocolError(f"reply has neither result nor error: {reply!r:.200}", req.method)
        return reply["result"]

    async def _connection(self, deadline: float | None, method: str) -> _Connection:
        conn = self._conn
        if conn is not None and conn.usable:
            return conn
        loop = asyncio.get_running_loop()
        limit = deadline
        if self.connect_timeout is not None:
            own = loop.time() + self.connect_timeout
            limit = own if limit is None else min(limit, own)
        try:
            async with asyncio.timeout_at(limit), self._lock:
                conn = self._conn
                if conn is not None and conn.usable:
                    return conn
                self._conn = None
                self._conns = [c for c in self._conns if not (c.finished and not c.pending)]
                reader, writer = await self.transport.open()
                self.connections_opened += 1
                conn = _Connection(reader, writer, f"{self.transport}#{self.connections_opened}")
                self._conns.append(conn)
                self._conn = conn
                return conn
        except TimeoutError:
            raise SpdkConnectError(f"timed out connecting to {self.transport}", method) from None
        except OSError as exc:
            raise SpdkConnectError(f"cannot connect to {self.transport}: {exc}", method) from exc


class Reply:
    """The outcome of one call made in a `Batch`, available once the batch has ended."""

    __slots__ = ("_done", "_error", "_result", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self._done = False
        self._result: Any = None
        self._error: SpdkError | None = None

    def _set(self, outcome: Any) -> None:
        self._done = True
        if isinstance(outcome, SpdkError):
            self._error = outcome
        else:
            self._result = outcome

    @property
    def done(self) -> bool:
        return self._done

    @property
    def error(self) -> SpdkError | None:
        return self._error

    def result(self) -> Any:
        if not self._done:
            raise RuntimeError(f"{self.request.method}: the batch has not been sent yet")
        if self._error is not None:
            raise self._error
        return self._result


class Batch:
    """`async with client.batch() as b: x = b.call(...)`: every call is written at once on exit."""

    def __init__(self, client: SpdkClient, *, timeout: float | None, return_exceptions: bool) -> None:
        self._client = client
        self._timeout = timeout
        self._return_exceptions = return_exceptions
        self._replies: list[Reply] = []

    def call(self, method: str, params: Params = None) -> Reply:
        reply = Reply(Request(method, params))
        self._replies.append(reply)
        return reply

    @property
    def replies(self) -> list[Reply]:
        return list(self._replies)

    async def __aenter__(self) -> Batch:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None or not self._replies:
            return
        outcomes = await self._client.gather(
            [r.request for r in self._replies], timeout=self._timeout, return_exceptions=True
        )
        for reply, outcome in zip(self._replies, outcomes, strict=True):
            reply._set(outcome)
        if not self._return_exceptions:
            for reply in self._replies:
                if reply.error is not None:
                    raise reply.error
