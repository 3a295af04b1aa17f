"""Client of the admin API: ``await ApiClient(url, token).call(method, params)``.

``url`` is ``unix:///path/to/api.sock`` (or just the path) or ``http(s)://host:port``. An error answer
raises the :class:`~spdkvirt.api.errors.ApiError` subclass of its code; a call that could not be made
(no server, TLS failure, HTTP 401, deadline) raises :class:`ApiUnreachable`. :func:`call_sync` is the
one-shot form the command line uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from spdkvirt.api.errors import ApiError, from_wire
from spdkvirt.api.unix import Framer, FramingError

DEFAULT_TIMEOUT = 120.0
_MAX_RESPONSE = 64 << 20


class ApiUnreachable(Exception):
    """The call could not be made or its answer could not be read."""


@dataclass(frozen=True)
class Endpoint:
    """Where the API is: a UNIX socket path, or an HTTP(S) host and port."""

    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        if url.startswith(("/", ".")):
            return cls("unix", path=url)
        parts = urlsplit(url)
        if parts.scheme == "unix":
            path = parts.netloc + parts.path
            if not path:
                raise ValueError(f"{url}: no socket path")
            return cls("unix", path=path)
        if parts.scheme in ("http", "https"):
            if not parts.hostname:
                raise ValueError(f"{url}: no host")
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                raise ValueError(f"{url}: bad port") from None
            return cls(parts.scheme, host=parts.hostname, port=port)
        raise ValueError(f"{url}: use unix:///path, /path, http://host:port or https://host:port")

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.scheme == "unix" else f"{self.scheme}://{self.host}:{self.port}"


def _why(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError):
        return "no socket there (is the cluster up? spdkvirt up --workdir DIR)"
    if isinstance(e, ConnectionRefusedError):
        return "nothing listens there (is the cluster up?)"
    if isinstance(e, asyncio.IncompleteReadError | ConnectionResetError):
        return "the server closed the connection"
    if isinstance(e, OSError) and e.strerror and not isinstance(e, ssl.SSLError):
        return e.strerror
    return str(e) or type(e).__name__


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ApiUnreachable(f"the server sent something that is not JSON: {e}") from None


def _result(answer: Any, rid: int) -> Any:
    if not isinstance(answer, dict) or (answer.get("id") != rid and "error" not in answer):
        raise ApiUnreachable("the server sent something that is not a JSON-RPC response")
    if "error" in answer:
        err = answer["error"]
        if not isinstance(err, dict):
            raise ApiUnreachable("the server sent a malformed error")
        raise from_wire(int(err.get("code", -32000)), str(err.get("message", "error")), err.get("data"))
    return answer.get("result")


class ApiClient:
    """A connection to the API; calls on one client are made one after another."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        cafile: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.endpoint = Endpoint.parse(url)
        self.token = token
        self.cafile = cafile
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._unix: tuple[asyncio.StreamReader, asyncio.StreamWriter, Framer] | None = None

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Make one call; its result, or the error answer raised as :class:`ApiError`."""
        rid = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": dict(params or {})}).encode()
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout):
                    if self.endpoint.scheme == "unix":
                        raw = await self._unix_exchange(body)
                    else:
                        raw = await self._http_exchange(body)
            except TimeoutError:
                await self.close()
                raise ApiUnreachable(f"{self.endpoint}: no answer within {self.timeout:g} s") from None
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError, FramingError) as e:
                await self.close()
                raise ApiUnreachable(f"cannot reach the API at {self.endpoint}: {_why(e)}") from None
        return _result(_decode(raw), rid)

    async def _unix_exchange(self, body: bytes) -> bytes:
        if self._unix is None:
            reader, writer = await asyncio.open_unix_connection(self.endpoint.path, limit=1 << 20)
            self._unix = (reader, writer, Framer(max_message=_MAX_RESPONSE))
        reader, writer, framer = self._unix
        writer.write(body)
        await writer.drain()
        while True:
            data = await reader.read(1 << 16)
            if not data:
                raise ConnectionResetError("the server closed the connection")
            messages = framer.feed(data)
            if messages:
                return messages[0]

    def _tls(self) -> ssl.SSLContext | None:
        if self.endpoint.scheme != "https":
            return None
        ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    async def _http_exchange(self, body: bytes) -> bytes:
        ep = self.endpoint
        reader, writer = await asyncio.open_connection(ep.host, ep.port, ssl=self._tls(), limit=1 << 16)
        try:
            head = [
                "POST / HTTP/1.1",
                f"Host: {ep.host}:{ep.port}",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                "Connection: close",
            ]
            if self.token:
                head.append(f"Authorization: Bearer {self.token}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            status_line = (await reader.readuntil(b"\r\n")).decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (line := (await reader.readuntil(b"\r\n")).rstrip(b"\r\n")) != b"":
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
            length = int(headers.get("content-length", "0") or 0)
            if length > _MAX_RESPONSE:
                raise ApiUnreachable(f"{ep}: answer larger than {_MAX_RESPONSE} bytes")
            data = await reader.readexactly(length)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        if status == 401:
            raise ApiUnreachable(f"{ep}: the API refused the token (HTTP 401); see --token-file")
        if status != 200:
            raise ApiUnreachable(f"{ep}: HTTP {status} {data[:200].decode('utf-8', 'replace')}")
        return data

    async def close(self) -> None:
        if self._unix is not None:
            _, writer, _ = self._unix
            self._unix = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def call_sync(
    url: str,
    method: str,
    params: Mapping[str, Any] | None = None,
    *,
    token: str | None = None,
    cafile: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Any:
    """One call from synchronous code (the command line): connects, calls, closes."""

    async def once() -> Any:
        async with ApiClient(url, token, cafile=cafile, timeout=timeout) as client:
            return await client.call(method, params)

    return asyncio.run(once())


__all__ = ["ApiClient", "ApiError", "ApiUnreachable", "Endpoint", "call_sync"]
