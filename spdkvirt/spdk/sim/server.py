"""The JSON-RPC 2.0 server of the simulator, with SPDK's framing and request checks.

`--rpc-poll-ms N` emulates SPDK's RPC poller: requests are picked up only on poller ticks, so
every round trip costs up to N ms while requests that arrive together are answered together.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from .errors import INVALID_REQUEST, METHOD_NOT_FOUND, RpcError
from .framing import ParseError, split_values
from .registry import METHODS
from .target import Target

log = logging.getLogger("spdkvirt.sim")

_MISSING = object()


def _valid_request(req: Any) -> bool:
    if not isinstance(req, dict) or "method" not in req:
        return False
    if "jsonrpc" in req and req["jsonrpc"] != "2.0":
        return False
    if not isinstance(req["method"], str):
        return False
    rid = req.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (str, int, float))):
        return False
    return "params" not in req or isinstance(req["params"], (dict, list)) or req["params"] is None


def _reply(rid: Any, *, result: Any = _MISSING, error: RpcError | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"jsonrpc": "2.0", "id": rid}
    if error is not None:
        out["error"] = error.to_json()
    else:
        out["result"] = result
    return out


class Server:
    def __init__(self, target: Target) -> None:
        self.target = target

    async def call(self, method: str, params: Any) -> Any:
        """Run one method; raises RpcError. `params` is None when the request had none."""
        target = self.target
        delay = target.rpc_delays.get(method)
        if delay:
            await asyncio.sleep(delay / 1000.0)
        injected = target.rpc_errors.get(method)
        if injected is not None:
            code, count = injected
            if count <= 1:
                del target.rpc_errors[method]
            else:
                target.rpc_errors[method] = (code, count - 1)
            raise RpcError(code, "Injected error (sim_rpc_error)")
        handler = METHODS.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, "Method not found")
        return await handler(target, params)

    async def handle_one(self, req: Any) -> dict[str, Any] | None:
        if not _valid_request(req):
            return _reply(None, error=RpcError(INVALID_REQUEST, "Invalid request"))
        rid = req.get("id")
        try:
            result = await self.call(req["method"], req.get("params"))
            reply = _reply(rid, result=result)
        except RpcError as err:
            reply = _reply(rid, error=err)
        except Exception:  # a simulator bug must not take the target down
            log.exception("handler for %s failed", req["method"])
            reply = _reply(rid, error=RpcError(-32603, "Internal error"))
        return None if rid is None else reply

    async def handle_value(self, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                return _reply(None, error=RpcError(INVALID_REQUEST, "Invalid request"))
            replies = [await self.handle_one(v) for v in value]
            kept = [r for r in replies if r is not None]
            return kept or None
        return await self.handle_one(value)

    async def next_tick(self) -> None:
        period = self.target.rpc_poll_ms / 1000.0
        if period <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        await asyncio.sleep((int(now / period) + 1) * period - now)

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        self.target.connections.add(conn)
        buf = b""
        lock = asyncio.Lock()

        async def run(value: Any) -> None:
            await self.next_tick()
            reply = await self.handle_value(value)
            if reply is None or conn.closed:
                return
            async with lock:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    writer.write(json.dumps(reply, separators=(",", ":")).encode())
                    await writer.drain()

        try:
            while not conn.closed:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buf += chunk
                try:
                    values, buf = split_values(buf)
                except ParseError:
                    break
                for v in values:
                    # a request runs to its end even if the client goes away, as in SPDK
                    self.target.spawn(run(v))
                    # start each request in order before reading the next one
                    await asyncio.sleep(0)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            conn.closed = True
            self.target.connections.discard(conn)
            with contextlib.suppress(Exception):
                writer.close()


class _Conn:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.closed = False

    def drop(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.close()
