"""A scripted JSON-RPC peer on a UNIX socket, for testing the client without a simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from spdkvirt.spdk.client import JsonStream

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


def ok(req: dict[str, Any], result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req["id"], "result": result}


def err(req: dict[str, Any], code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": req["id"], "error": error}


async def echo(req: dict[str, Any]) -> dict[str, Any] | None:
    """Answer every request with {"method", "params"} (params None when absent)."""
    return ok(req, {"method": req["method"], "params": req.get("params")})


class FakeServer:
    """Serves a handler per request (each in its own task, so replies may overtake each other).

    `handler` returns the reply object to send, or None to send nothing. `raw` lets a test write
    bytes of its own; `drop()` closes every connection.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.handler: Handler = echo
        self.requests: list[dict[str, Any]] = []
        self.raw_requests: list[bytes] = []
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self._server is not None:
            await self._server.wait_closed()

    def drop(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    def raw(self, data: bytes) -> None:
        for writer in self._writers:
            writer.write(data)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        stream = JsonStream()
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                self.raw_requests.append(chunk)
                for value in stream.feed(chunk):
                    if isinstance(value, list):
                        self._spawn(self._answer_array(value, writer))
                    else:
                        self.requests.append(value)
                        self._spawn(self._answer(value, writer))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, req: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self.handler(req)
        except Exception as exc:  # a broken test handler must fail its call, not hang it
            reply = err(req, -32603, f"test handler failed: {exc!r}")
        if reply is not None and not writer.is_closing():
            writer.write(json.dumps(reply).encode())

    async def _answer_array(self, reqs: list[dict[str, Any]], writer: asyncio.StreamWriter) -> None:
        self.requests.extend(reqs)
        replies = [await self.handler(r) for r in reqs]
        if not writer.is_closing():
            writer.write(json.dumps([r for r in replies if r is not None]).encode())
