"""What the admin API calls: the :class:`Service` (changes), the :class:`ReadSide` (queries) and the
:class:`IdempotencyLog` that lets a retried call return its first result.

Every method takes the call's params, already checked against ``schemas/api/<method>.json`` and with
top-level defaults filled in (``redundancy`` 2, ``thin`` true, ...), and returns the JSON result the
method's ``result`` schema describes. Failures are raised as the errors of :mod:`spdkvirt.api.errors`
(``NotFound``, ``Refused``, ...). Params never carry ``idempotency_key`` into the service: the
dispatcher handles it (:func:`run_idempotent`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from spdkvirt.api.errors import IdempotencyConflict
from spdkvirt.store import Store, keys

Params = Mapping[str, Any]
JsonObject = dict[str, Any]


@runtime_checkable
class Service(Protocol):
    """The changes the API can ask of the cluster."""

    async def volume_create(self, params: Params) -> JsonObject:
        """{name, size_bytes, redundancy, thin, placement?} -> volume. AlreadyExists, InsufficientCapacity."""
        ...

    async def volume_delete(self, params: Params) -> bool:
        """{name} -> True. NotFound, InvalidState (has exports)."""
        ...

    async def volume_resize(self, params: Params) -> JsonObject:
        """{name, size_bytes} -> volume. NotFound, Refused at $.size_bytes for a shrink."""
        ...

    async def volume_snapshot(self, params: Params) -> JsonObject:
        """{name, snapshot_name} -> snapshot. NotFound, AlreadyExists."""
        ...

    async def volume_clone(self, params: Params) -> JsonObject:
        """{snapshot_name, name} -> volume. NotFound, AlreadyExists."""
        ...

    async def export_create(self, params: Params) -> JsonObject:
        """{volume, protocol, hosts?, allow_any_host, dhchap?, initiators?, netmasks?, chap?,
        allow_second_protocol} -> export. NotFound; Refused at $.protocol (or $.allow_second_protocol)
        for a second protocol."""
        ...

    async def export_delete(self, params: Params) -> bool:
        """{volume, export_id} -> True. NotFound."""
        ...

    async def device_set_state(self, params: Params) -> JsonObject:
        """{node, device_id, state, reason?} -> device. NotFound, InvalidState."""
        ...


@runtime_checkable
class ReadSide(Protocol):
    """The queries of the API (:class:`spdkvirt.api.methods.StoreReadSide` answers them from the store)."""

    async def volume_list(self, params: Params) -> list[JsonObject]: ...

    async def volume_get(self, params: Params) -> JsonObject: ...

    async def export_list(self, params: Params) -> list[JsonObject]: ...

    async def node_list(self, params: Params) -> list[JsonObject]: ...

    async def device_list(self, params: Params) -> list[JsonObject]: ...

    async def cluster_status(self, params: Params) -> JsonObject: ...

    async def epoch_list(self, params: Params) -> list[JsonObject]: ...


@dataclass(frozen=True)
class IdempotencyEntry:
    """The first successful result of a call made with ``key``, and what identifies its params."""

    key: str
    method: str
    fingerprint: str
    result: Any

    def to_json(self) -> JsonObject:
        return {"key": self.key, "method": self.method, "fingerprint": self.fingerprint, "result": self.result}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> IdempotencyEntry:
        return cls(value["key"], value["method"], value["fingerprint"], value["result"])

    def record(self) -> JsonObject:
        """The entry as an ``idempotency`` record of the store (for a service that writes it in its own txn)."""
        return {
            "kind": "idempotency",
            "schema_version": 1,
            "key": self.key,
            "method": self.method,
            "params_digest": self.fingerprint,
            "result": self.result,
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> IdempotencyEntry:
        return cls(record["key"], record["method"], record["params_digest"], record["result"])


class IdempotencyLog(Protocol):
    """Where first results are kept (the database, in a cluster; memory in tests)."""

    async def get(self, key: str) -> IdempotencyEntry | None: ...

    async def put(self, entry: IdempotencyEntry) -> None: ...


class MemoryIdempotencyLog:
    """An :class:`IdempotencyLog` in a dict: for tests and single-process use (see also StoreIdempotencyLog)."""

    def __init__(self) -> None:
        self.entries: dict[str, IdempotencyEntry] = {}

    async def get(self, key: str) -> IdempotencyEntry | None:
        return self.entries.get(key)

    async def put(self, entry: IdempotencyEntry) -> None:
        self.entries[entry.key] = entry


class StoreIdempotencyLog:
    """An :class:`IdempotencyLog` in the store: one ``idempotency`` record per key."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, key: str) -> IdempotencyEntry | None:
        kv = await self.store.get(keys.idempotency(key))
        return IdempotencyEntry.of_record(kv.value) if kv is not None else None

    async def put(self, entry: IdempotencyEntry) -> None:
        await self.store.put(keys.idempotency(entry.key), entry.record())


def fingerprint(method: str, params: Params) -> str:
    """A digest of a call: the method and its params (defaults filled in, without the key)."""
    body = {k: v for k, v in params.items() if k != "idempotency_key"}
    text = json.dumps([method, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class KeyLocks:
    """One lock per idempotency key in use, so two calls with one key never run side by side."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def run(self, key: str, call: Callable[[], Awaitable[Any]]) -> Any:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await call()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


async def run_idempotent(
    log: IdempotencyLog,
    locks: KeyLocks,
    method: str,
    params: Params,
    call: Callable[[Params], Awaitable[Any]],
) -> Any:
    """Run ``call`` once per idempotency key: a retry with the same params gets the first result again,
    other params (or another method) with the same key are refused with :class:`IdempotencyConflict`.
    Only successes are kept: a call that failed may be retried with its key."""
    key = params.get("idempotency_key")
    body = {k: v for k, v in params.items() if k != "idempotency_key"}
    if not isinstance(key, str):
        return await call(body)
    digest = fingerprint(method, body)

    async def once() -> Any:
        seen = await log.get(key)
        if seen is not None:
            if seen.method != method or seen.fingerprint != digest:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was used for another {seen.method} call with other params",
                    {"path": "$.idempotency_key", "idempotency_key": key, "method": seen.method},
                )
            return seen.result
        result = await call(body)
        await log.put(IdempotencyEntry(key, method, digest, result))
        return result

    return await locks.run(key, once)
