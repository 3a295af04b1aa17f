"""JSON-RPC 2.0 dispatch of the admin API: requests, batches and notifications in, responses out.

Order of checks for one request: is it a request (-32600), is the method known (-32601), do the params
fit the method's schema (-32602, ``data.path`` names the field), and only then the handler runs. A
handler's :class:`~spdkvirt.api.errors.ApiError` is answered as it is; errors of the store and the SPDK
adapter are mapped (:func:`~spdkvirt.api.errors.from_exception`); anything else is a bug: logged with
its traceback under an incident id, answered as -32603 with only that id. In debug mode every result
is checked against the method's result schema as well.

The listeners (:mod:`spdkvirt.api.unix`, :mod:`spdkvirt.api.http`) hand raw request bytes to
:meth:`Dispatcher.handle_bytes`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from spdkvirt.api import errors
from spdkvirt.api.errors import ApiError, InternalError, InvalidParams, InvalidRequest, MethodNotFound, ParseError
from spdkvirt.api.methods import Handler, handlers
from spdkvirt.api.schemas import ApiSchemas, Finding, api_schemas, first_problem, json_path
from spdkvirt.api.service import IdempotencyLog, KeyLocks, MemoryIdempotencyLog, ReadSide, Service, run_idempotent

log = logging.getLogger("spdkvirt.api")

#: deepest nesting of arrays and objects accepted inside params
MAX_PARAMS_DEPTH = 32
#: most requests in one batch
MAX_BATCH = 1000
_REQUEST_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})
_NO_ID = object()
_MAX_SHOWN = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            raise ValueError(f"member {k[:_MAX_SHOWN]!r} appears twice in one object")
        seen.add(k)
    return dict(pairs)


def parse(data: bytes | str) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no repeated member names; raises :class:`ParseError`."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_members)
    except RecursionError:
        raise ParseError("Parse error: nested too deep", {"reason": "nested too deep"}) from None
    except (ValueError, UnicodeDecodeError) as e:
        reason = str(e)[:200]
        raise ParseError(f"Parse error: {reason}", {"reason": reason}) from None


def encode(message: Any) -> bytes:
    """A response on the wire: compact, ASCII-only JSON."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _shape_problem(value: Any, max_depth: int) -> Finding | None:
    """Nesting too deep or a string that is not valid Unicode (a lone surrogate), anywhere in ``value``."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return Finding(json_path(path), "not valid Unicode (lone surrogate)", len(path))
            continue
        if not isinstance(item, dict | list):
            continue
        if len(path) >= max_depth:
            return Finding(json_path(path), f"nested deeper than {max_depth} levels", len(path))
        if isinstance(item, dict):
            for k in item:
                try:
                    k.encode("utf-8")
                except UnicodeEncodeError:
                    return Finding(json_path(path), "member name is not valid Unicode (lone surrogate)", len(path))
            stack.extend((v, [*path, k]) for k, v in reversed(item.items()))
        else:
            stack.extend((v, [*path, i]) for i, v in reversed(list(enumerate(item))))
    return None


def _valid_id(message: Mapping[str, Any]) -> Any:
    if "id" not in message:
        return _NO_ID
    rid = message["id"]
    if rid is None or isinstance(rid, str) or (isinstance(rid, int) and not isinstance(rid, bool)):
        return rid
    return None


class Dispatcher:
    """Answers JSON-RPC 2.0 messages with the API's methods."""

    def __init__(
        self,
        service: Service,
        reads: ReadSide,
        *,
        idempotency: IdempotencyLog | None = None,
        debug: bool = False,
        schemas: ApiSchemas | None = None,
    ) -> None:
        self.schemas = schemas or api_schemas()
        self.handlers: dict[str, Handler] = handlers(service, reads)
        self.idempotency: IdempotencyLog = idempotency if idempotency is not None else MemoryIdempotencyLog()
        self.debug = debug
        self._locks = KeyLocks()

    async def handle_bytes(self, data: bytes | str) -> bytes | None:
        """One message on the wire in, its response on the wire out (None: nothing to answer)."""
        try:
            message = parse(data)
        except ParseError as e:
            return encode(_error(None, e))
        response = await self.handle(message)
        return None if response is None else encode(response)

    async def handle(self, message: Any) -> Any:
        """A parsed message (request or batch) in, the response (or None) out."""
        if isinstance(message, list):
            if not message:
                return _error(None, InvalidRequest("Invalid Request: empty batch", {"reason": "empty batch"}))
            if len(message) > MAX_BATCH:
                reason = f"batch of more than {MAX_BATCH} requests"
                return _error(None, InvalidRequest(f"Invalid Request: {reason}", {"reason": reason}))
            answers = await asyncio.gather(*(self._one(m) for m in message))
            found = [a for a in answers if a is not None]
            return found or None
        return await self._one(message)

    async def _one(self, message: Any) -> dict[str, Any] | None:
        if not isinstance(message, dict):
            return _error(None, InvalidRequest("Invalid Request: not an object", {"reason": "not an object"}))
        rid = _valid_id(message)
        problem = _request_problem(message, rid)
        if problem is not None:
            return _error(
                None if rid is _NO_ID else rid, InvalidRequest(f"Invalid Request: {problem}", {"reason": problem})
            )
        try:
            result = await self.call(message["method"], message.get("params", {}))
        except ApiError as e:
            return None if rid is _NO_ID else _error(rid, e)
        return None if rid is _NO_ID else {"jsonrpc": "2.0", "id": rid, "result": result}

    async def call(self, method: str, params: Any) -> Any:
        """Check and run one call; raises :class:`ApiError` for every failure."""
        handler = self.handlers.get(method)
        schema = self.schemas.methods.get(method)
        if handler is None or schema is None:
            shown = method[:_MAX_SHOWN]
            raise MethodNotFound(f"Method not found: {shown}", {"method": shown})
        if not isinstance(params, dict):
            raise InvalidParams.at("$", "params must be an object")
        found = _shape_problem(params, MAX_PARAMS_DEPTH) or first_problem(schema.params, params)
        if found is not None:
            raise InvalidParams.at(found.path, found.reason)
        full = schema.with_defaults(params)
        try:
            result = await run_idempotent(self.idempotency, self._locks, method, full, handler)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            mapped = errors.from_exception(exc)
            if mapped is None:
                raise self._bug(method, exc) from None
            raise mapped from None
        if self.debug:
            self._check_result(method, schema.result, result)
        return result

    def _bug(self, method: str, exc: BaseException) -> InternalError:
        incident = uuid.uuid4().hex[:12]
        log.error("API method %s failed (incident %s)", method, incident, exc_info=exc)
        return InternalError("Internal error", {"incident": incident})

    def _check_result(self, method: str, validator: Any, result: Any) -> None:
        found = first_problem(validator, result)
        if found is None:
            try:
                encode(result)
                return
            except (TypeError, ValueError) as e:
                found = Finding("$", f"not JSON: {e}", 0)
        incident = uuid.uuid4().hex[:12]
        log.error(
            "API method %s returned a result against its schema at %s: %s (incident %s)",
            method,
            found.path,
            found.reason,
            incident,
        )
        raise InternalError("Internal error: result does not fit its schema", {"incident": incident})


def _request_problem(message: Mapping[str, Any], rid: Any) -> str | None:
    if message.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if not isinstance(message.get("method"), str):
        return "method must be a string"
    if rid is None and message.get("id") is not None:
        return "id must be a string, an integer or null"
    extra = sorted(set(message) - _REQUEST_MEMBERS)
    if extra:
        return f"unknown member {extra[0][:_MAX_SHOWN]!r}"
    return None


def _error(rid: Any, e: ApiError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": e.to_wire()}


class Connections:
    """The open connections of the listeners, so that closing the server closes them too."""

    def __init__(self) -> None:
        self._open: dict[asyncio.StreamWriter, asyncio.Task[Any]] = {}

    async def serve(self, writer: asyncio.StreamWriter, run: Callable[[], Awaitable[None]]) -> None:
        """Run one connection's handler, known to :meth:`close_all` while it runs."""
        task = asyncio.current_task()
        if task is not None:
            self._open[writer] = task
        try:
            await run()
        finally:
            self._open.pop(writer, None)

    async def close_all(self, grace: float = 5.0) -> None:
        """Close every connection (their handlers see end of input and finish), then wait for them."""
        tasks = list(self._open.values())
        for writer in list(self._open):
            writer.close()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
