"""The admin API over HTTP/1.1 (HTTPS when given a certificate): ``POST /`` with a JSON-RPC body.

Every request needs ``Authorization: Bearer <token>``; without it, or with another token, the answer is
401 and the connection is closed before the body is read. A body needs a ``Content-Length`` (no
chunked uploads) of at most :data:`MAX_BODY` bytes. Connections are kept alive between requests (until
:data:`IDLE_TIMEOUT` of silence). Answers: 200 with the JSON-RPC response, 204 when the request held
only notifications, 4xx for HTTP-level mistakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from spdkvirt.api.auth import bearer_ok
from spdkvirt.api.server import Connections, Dispatcher

MAX_BODY = 1 << 20
MAX_HEADER_LINE = 8192
MAX_HEADERS = 64
IDLE_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0
LINGER = 1.0

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """An HTTP-level refusal: status and a short reason; the connection closes after it."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})
        super().__init__(f"{status} {reason}")


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: Mapping[str, str]


def server_tls(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or newer) from a PEM certificate chain and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "header line too long") from None
    if len(line) > MAX_HEADER_LINE:
        raise HttpError(431, "header line too long")
    return line.rstrip(b"\r\n")


async def read_head(reader: asyncio.StreamReader) -> Request:
    """The request line and headers (names lower-cased). Raises IncompleteReadError at a clean EOF."""
    first = (await _line(reader)).decode("latin-1")
    parts = first.split(" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505, "only HTTP/1.1")
    headers: dict[str, str] = {}
    while line := await _line(reader):
        if len(headers) >= MAX_HEADERS:
            raise HttpError(431, "too many headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header")
        key = name.lower()
        if key in headers and key in ("content-length", "authorization", "transfer-encoding"):
            raise HttpError(400, f"repeated {key} header")
        headers[key] = value.strip()
    return Request(method, target, version, headers)


def _content_length(headers: Mapping[str, str]) -> int:
    if "transfer-encoding" in headers:
        raise HttpError(501, "chunked request bodies are not supported; send Content-Length")
    text = headers.get("content-length")
    if text is None:
        raise HttpError(411, "Content-Length required")
    if not text.isdigit() or len(text) > 12:
        raise HttpError(400, "bad Content-Length")
    size = int(text)
    if size > MAX_BODY:
        raise HttpError(413, f"body larger than {MAX_BODY} bytes")
    return size


def _response(status: int, body: bytes, *, keep_alive: bool, headers: Mapping[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection:
    def __init__(
        self, dispatcher: Dispatcher, token: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.dispatcher = dispatcher
        self.token = token
        self.reader = reader
        self.writer = writer

    async def run(self) -> None:
        try:
            while await self._exchange():
                pass
        except HttpError as e:
            body = json.dumps({"error": e.reason}).encode()
            await self._send(_response(e.status, body, keep_alive=False, headers=e.headers))
            await self._linger()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
                await self.writer.wait_closed()

    async def _exchange(self) -> bool:
        """One request and its answer; False when the connection is to close."""
        try:
            async with asyncio.timeout(IDLE_TIMEOUT):
                head = await read_head(self.reader)
        except TimeoutError:
            return False
        async with asyncio.timeout(REQUEST_TIMEOUT):
            if head.target.split("?", 1)[0] != "/":
                raise HttpError(404, "the API is at /")
            if head.method != "POST":
                raise HttpError(405, "use POST", {"Allow": "POST"})
            if not bearer_ok(head.headers.get("authorization"), self.token):
                raise HttpError(401, "unauthorized", {"WWW-Authenticate": 'Bearer realm="spdkvirt"'})
            size = _content_length(head.headers)
            body = await self.reader.readexactly(size)
        answer = await self.dispatcher.handle_bytes(body)
        keep = head.version == "HTTP/1.1" and head.headers.get("connection", "").lower() != "close"
        if answer is None:
            await self._send(_response(204, b"", keep_alive=keep))
        else:
            await self._send(_response(200, answer, keep_alive=keep))
        return keep

    async def _linger(self) -> None:
        """Read and drop what the client still sends for a moment, so that closing does not reset the
        connection before it has read the refusal."""
        with contextlib.suppress(TimeoutError, ConnectionError, OSError, ssl.SSLError):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(LINGER):
                dropped = 0
                while dropped <= MAX_BODY and (chunk := await self.reader.read(65536)):
                    dropped += len(chunk)

    async def _send(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
            self.writer.write(data)
            await self.writer.drain()


async def serve_http(
    dispatcher: Dispatcher,
    host: str,
    port: int,
    *,
    token: str,
    tls: ssl.SSLContext | None = None,
    connections: Connections | None = None,
) -> asyncio.Server:
    """Listen for HTTP(S) on ``host:port`` (port 0: any free port; see ``server.sockets``)."""
    if not token:
        raise ValueError("the HTTP listener needs a token")

    conns = connections or Connections()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await conns.serve(writer, _Connection(dispatcher, token, reader, writer).run)

    return await asyncio.start_server(on_connect, host, port, ssl=tls, limit=MAX_HEADER_LINE)
