"""What a storage backend provides: raw key-values with revisions, transactions, watches and leases.

Backends store JSON values without looking at them; :class:`spdkvirt.store.store.Store` adds the key
layout, validation, leases with keepalive and leader election on top, identically for every backend.
Semantics follow etcd v3: one global revision, bumped once per transaction that changes something;
watches deliver every change with revision >= the start revision, in order, exactly once.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence

from spdkvirt.store.types import Compare, Event, Op, RangeResult, TxnResult

#: most operations one transaction may hold (etcd's default --max-txn-ops)
MAX_TXN_OPS = 128


class BackendWatch(ABC):
    """An open watch: iterate for events; ``close`` stops it."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abstractmethod
    async def close(self) -> None: ...


class QueueWatch(BackendWatch):
    """A watch fed through a queue: events are yielded, an exception is raised, None ends it."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class Backend(ABC):
    """A store backend (embedded file store or etcd)."""

    url: str

    @abstractmethod
    async def range(self, key: str, *, prefix: bool) -> RangeResult:
        """Key ``key`` alone, or every key starting with it, in key order."""

    @abstractmethod
    async def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> TxnResult:
        """If every compare holds run ``success`` else ``failure``, all at one revision, all or nothing."""

    @abstractmethod
    def watch(self, key: str, *, prefix: bool, start_revision: int) -> BackendWatch:
        """Changes to ``key`` (or under it) from ``start_revision`` on; raises Compacted when too old."""

    @abstractmethod
    async def revision(self) -> int:
        """The current store revision."""

    @abstractmethod
    async def lease_grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; returns its id."""

    @abstractmethod
    async def lease_keepalive(self, lease_id: int) -> int:
        """Renew a lease to its full TTL; returns the TTL. Raises LeaseNotFound."""

    @abstractmethod
    async def lease_revoke(self, lease_id: int) -> None:
        """End a lease now, deleting its keys. Raises LeaseNotFound."""

    @abstractmethod
    async def lease_ttl(self, lease_id: int) -> int | None:
        """Seconds left on a lease, or None if it does not exist."""

    @abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget the history of changes before ``revision``."""

    @abstractmethod
    async def close(self) -> None: ...
