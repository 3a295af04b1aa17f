"""The store API every part of spdkvirt uses, the same over the embedded file store and etcd.

Adds to a :class:`Backend`: the key layout (every key is a record key, every prefix under ``/spdkvirt/``),
validation of every record written and read (a bad record raises :class:`InvalidRecord` naming its key
and the path inside it), compare-and-swap helpers, resumable watches, leases with keepalive, and
leader election.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from spdkvirt.store import keys
from spdkvirt.store.backend import MAX_TXN_OPS, Backend, BackendWatch
from spdkvirt.store.errors import Compacted, Conflict, InvalidRecord, Problem, StoreError
from spdkvirt.store.lease import Lease
from spdkvirt.store.schema import Schemas, schemas
from spdkvirt.store.types import (
    Compare,
    Delete,
    Event,
    EventKind,
    Get,
    KeyValue,
    Op,
    OpResult,
    Put,
    RangeResult,
    TxnResult,
)

if TYPE_CHECKING:
    from spdkvirt.store.election import Election


class GuardFailed(StoreError):
    """A guard of a write (such as a leader's fencing compare) no longer holds: nothing was written."""

    def __init__(self, key: str, guards: Sequence[Compare]) -> None:
        self.key = key
        self.guards = tuple(guards)
        super().__init__(f"{key}: not written, a guard failed: {', '.join(_show(g) for g in guards)}")


def _show(c: Compare) -> str:
    return f"{c.target}({c.key}) {c.op} {c.operand!r}"


@dataclass(frozen=True)
class WatchCursor:
    """A position in the change stream: ``skip`` events of ``revision`` were already handed out."""

    revision: int
    skip: int = 0


@dataclass(frozen=True)
class Resync:
    """A full read of a prefix at ``revision``: it replaces everything a follower knew."""

    kvs: tuple[KeyValue, ...]
    revision: int


class Watch:
    """Events under a key or prefix, in revision order. ``async with`` closes it.

    ``cursor`` is the position right after the last event handed out; pass it as ``after=`` to
    :meth:`Store.watch` to go on from there (after a restart or a :class:`StoreUnavailable`) with no
    event missed or repeated. A record that fails validation ends the watch with :class:`InvalidRecord`
    (its cursor points past it); a compacted resume point ends it with :class:`Compacted`.
    """

    def __init__(self, inner: BackendWatch, cursor: WatchCursor, check: Schemas | None) -> None:
        self._inner = inner
        self.cursor = cursor
        self._check = check

    @property
    def next_revision(self) -> int:
        return self.cursor.revision if self.cursor.skip == 0 else self.cursor.revision + 1

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        start = self.cursor
        async for ev in self._inner:
            if ev.revision == start.revision and start.skip:
                start = WatchCursor(start.revision, start.skip - 1)
                continue
            if ev.revision == self.cursor.revision:
                self.cursor = WatchCursor(ev.revision, self.cursor.skip + 1)
            else:
                self.cursor = WatchCursor(ev.revision, 1)
            if self._check is not None and ev.kind is EventKind.PUT:
                self._check.validate(ev.key, ev.value)
            yield ev

    async def close(self) -> None:
        await self._inner.close()

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _check_txn_ops(ops: Sequence[Op]) -> None:
    puts: set[str] = set()
    deletes: list[Delete] = []
    for op in ops:
        if isinstance(op, Put):
            if op.key in puts:
                raise ValueError(f"duplicate key given in txn request: {op.key}")
            puts.add(op.key)
        elif isinstance(op, Delete):
            deletes.append(op)
    for d in deletes:
        for k in puts:
            if k == d.key or (d.prefix and k.startswith(d.key)):
                raise ValueError(f"duplicate key given in txn request: {k} is both put and deleted")


class Store:
    """A handle on the virtualization database. Open one with :func:`spdkvirt.store.open_store`."""

    def __init__(self, backend: Backend, *, schemas_: Schemas | None = None) -> None:
        self.backend = backend
        self.schemas = schemas_ if schemas_ is not None else schemas()

    @property
    def url(self) -> str:
        return self.backend.url

    def __repr__(self) -> str:
        return f"Store({self.url})"

    # checks

    def _check_key(self, key: str, prefix: bool) -> None:
        if prefix:
            keys.check_prefix(key)
        else:
            keys.parse(key)

    def _checked(self, kvs: Sequence[KeyValue], validate: bool) -> tuple[KeyValue, ...]:
        if validate:
            found: list[Problem] = []
            for kv in kvs:
                found.extend(self.schemas.problems(kv.key, kv.value))
            if found:
                raise InvalidRecord(found)
        return tuple(kvs)

    def _check_ops(self, ops: Sequence[Op]) -> None:
        for op in ops:
            if isinstance(op, Put):
                keys.parse(op.key)
                self.schemas.validate(op.key, op.value)
            else:
                self._check_key(op.key, op.prefix)

    # reading

    async def get(self, key: str, *, validate: bool = True) -> KeyValue | None:
        """The record at ``key``, or None."""
        keys.parse(key)
        kvs = (await self.backend.range(key, prefix=False)).kvs
        return self._checked(kvs, validate)[0] if kvs else None

    async def range(self, prefix: str, *, validate: bool = True) -> RangeResult:
        """Every record whose key starts with ``prefix``, in key order, with the revision read at."""
        keys.check_prefix(prefix)
        r = await self.backend.range(prefix, prefix=True)
        return RangeResult(self._checked(r.kvs, validate), r.revision)

    async def revision(self) -> int:
        return await self.backend.revision()

    # writing

    async def put(
        self,
        key: str,
        value: dict[str, Any],
        *,
        expect: int | None = None,
        lease: int | Lease = 0,
        guards: Sequence[Compare] = (),
    ) -> int:
        """Write a record; returns the new revision.

        ``expect``: compare-and-swap on the key's mod revision (0: the key must not exist), raising
        :class:`Conflict` with the current key-value when it moved. ``guards``: further compares that
        must hold (e.g. :meth:`Leadership.guard`), else :class:`GuardFailed`.
        """
        lease_id = lease.id if isinstance(lease, Lease) else lease
        compares = list(guards)
        if expect is not None:
            compares.insert(0, Compare.revision(key, expect))
        r = await self.txn(compares, [Put(key, value, lease_id)], [Get(key)])
        if not r.succeeded:
            self._raise_failed(key, expect, guards, r.results[0])
        return r.revision

    async def create(
        self, key: str, value: dict[str, Any], *, lease: int | Lease = 0, guards: Sequence[Compare] = ()
    ) -> int:
        """Write a record that must not exist yet (Conflict if it does)."""
        return await self.put(key, value, expect=0, lease=lease, guards=guards)

    async def delete(self, key: str, *, expect: int | None = None, guards: Sequence[Compare] = ()) -> bool:
        """Delete a record; True if it existed. ``expect``/``guards`` as for :meth:`put`."""
        compares = list(guards)
        if expect is not None:
            compares.insert(0, Compare.revision(key, expect))
        r = await self.txn(compares, [Delete(key)], [Get(key)])
        if not r.succeeded:
            self._raise_failed(key, expect, guards, r.results[0])
        return r.results[0].deleted > 0

    def _raise_failed(self, key: str, expect: int | None, guards: Sequence[Compare], got: OpResult) -> None:
        current = got.kvs[0] if got.kvs else None
        actual = current.mod_revision if current is not None else 0
        if expect is not None and actual != expect:
            raise Conflict(key, expect, current)
        raise GuardFailed(key, guards)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        """If every compare holds, apply ``success``, else ``failure``: all at one revision or nothing."""
        for branch in (success, failure):
            if len(branch) > MAX_TXN_OPS:
                raise ValueError(f"a transaction holds at most {MAX_TXN_OPS} operations per branch")
            _check_txn_ops(branch)
            self._check_ops(branch)
        if len(compares) > MAX_TXN_OPS:
            raise ValueError(f"a transaction holds at most {MAX_TXN_OPS} compares")
        for c in compares:
            keys.parse(c.key)
            if c.target == "value" and c.op not in ("==", "!="):
                raise ValueError("records compare by value only with == or !=")
        r = await self.backend.txn(compares, success, failure)
        for res in r.results:
            self._checked(res.kvs, True)
        return r

    # watching

    async def watch(
        self,
        key: str,
        *,
        prefix: bool = True,
        start_revision: int | None = None,
        after: WatchCursor | None = None,
        validate: bool = True,
    ) -> Watch:
        """Watch ``key`` (a prefix unless ``prefix=False``) from ``start_revision`` (default: changes
        after now), or from right after a previous watch's ``cursor``."""
        self._check_key(key, prefix)
        if after is not None:
            cursor = after
        else:
            start = start_revision if start_revision is not None else await self.backend.revision() + 1
            cursor = WatchCursor(max(start, 1))
        inner = self.backend.watch(key, prefix=prefix, start_revision=cursor.revision)
        return Watch(inner, cursor, self.schemas if validate else None)

    async def follow(
        self, prefix: str, *, after: WatchCursor | None = None, validate: bool = True
    ) -> AsyncGenerator[Resync | Event, None]:
        """Keep up with a prefix: a :class:`Resync` (full read), then every change in order.

        Resuming from ``after`` (a cursor kept from before) gives just the changes since; when those
        were compacted away, a fresh :class:`Resync` comes instead, so nothing is ever missed.
        ``validate=False`` skips the schema check of what is read (every write was checked): for
        followers of many records that parse them themselves.
        """
        cursor = after
        while True:
            if cursor is None:
                snap = await self.range(prefix, validate=validate)
                yield Resync(snap.kvs, snap.revision)
                cursor = WatchCursor(snap.revision + 1)
            try:
                async with await self.watch(prefix, after=cursor, validate=validate) as w:
                    async for ev in w:
                        cursor = w.cursor
                        yield ev
            except Compacted:
                cursor = None

    # leases and elections

    async def grant_lease(self, ttl: int, *, keepalive: bool = True) -> Lease:
        """A new lease of ``ttl`` whole seconds, renewed in the background unless ``keepalive=False``."""
        lease = Lease(self.backend, await self.backend.lease_grant(ttl), ttl)
        if keepalive:
            lease.start_keepalive()
        return lease

    def election(self, name: str) -> Election:
        from spdkvirt.store.election import Election

        return Election(self, name)

    async def compact(self, revision: int) -> None:
        """Drop change history before ``revision``; watches from older revisions get Compacted."""
        await self.backend.compact(revision)

    async def close(self) -> None:
        await self.backend.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
