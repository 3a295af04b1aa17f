"""Leader election on leases, the same on every backend.

Each candidate writes a ``leader`` record under ``/spdkvirt/leader/<election>/<lease id>`` attached to
its lease. The candidate whose key has the lowest create revision leads; the others each wait for the
deletion of the key just ahead of theirs. The leader's create revision is its fencing token: a new
leader's key is always created later, so tokens grow with every new leader. A write guarded by
:meth:`Leadership.guard` only succeeds while that very candidacy still exists, so a deposed leader's
writes are refused by the store itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spdkvirt.store import keys
from spdkvirt.store.errors import Compacted, LeadershipLost
from spdkvirt.store.lease import Lease
from spdkvirt.store.types import Compare, Delete, EventKind, Get, KeyValue, Put

if TYPE_CHECKING:
    from spdkvirt.store.store import Store


@dataclass(frozen=True)
class LeaderInfo:
    """Who leads an election, with its fencing token."""

    election: str
    key: str
    holder: str
    token: int
    lease: int
    record: dict[str, Any]

    @classmethod
    def of(cls, election: str, kv: KeyValue) -> LeaderInfo:
        return cls(election, kv.key, kv.value["holder"], kv.create_revision, kv.lease, kv.value)


class Leadership:
    """Being the leader. Holds while the lease lives; ``lost`` is set when the lease is lost."""

    def __init__(self, election: Election, info: LeaderInfo, lease: Lease) -> None:
        self.election = election
        self.info = info
        self.lease = lease

    @property
    def token(self) -> int:
        return self.info.token

    @property
    def key(self) -> str:
        return self.info.key

    @property
    def lost(self) -> asyncio.Event:
        return self.lease.lost

    def guard(self) -> Compare:
        """A compare that holds only while this leadership does: add it to every leader write."""
        return Compare.created(self.key, self.token)

    async def is_current(self) -> bool:
        kv = await self.election.store.get(self.key)
        return kv is not None and kv.create_revision == self.token

    async def resign(self) -> None:
        """Step down: delete the candidacy (the next candidate takes over). The lease is kept."""
        await self.election.store.txn([self.guard()], [Delete(self.key)])


class Election:
    """A named election in a store."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = keys.check_id(name)
        self.prefix = keys.candidates(name)

    async def campaign(self, holder: str, lease: Lease, *, address: str | None = None) -> Leadership:
        """Stand as ``holder`` on ``lease``; returns once leading. Cancelling withdraws the candidacy."""
        key = keys.leader(self.name, lease.id)
        record: dict[str, Any] = {
            "kind": "leader",
            "schema_version": 1,
            "election": self.name,
            "holder": holder,
            "lease": lease.id,
            "since": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if address is not None:
            record["address"] = address
        r = await self.store.txn([Compare.absent(key)], [Put(key, record, lease.id)], [Get(key)])
        token = r.revision if r.succeeded else r.results[0].kvs[0].create_revision
        try:
            while True:
                snap = await self.store.range(self.prefix)
                mine = [kv for kv in snap.kvs if kv.key == key]
                if not mine or lease.lost.is_set():
                    raise LeadershipLost(f"{holder}: candidacy in {self.name} ended before it led (lease lost)")
                ahead = [kv for kv in snap.kvs if kv.create_revision < token]
                if not ahead:
                    return Leadership(self, LeaderInfo.of(self.name, mine[0]), lease)
                predecessor = max(ahead, key=lambda kv: kv.create_revision)
                await self._wait_gone(predecessor.key, snap.revision + 1, lease)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.txn([Compare.created(key, token)], [Delete(key)]))
            raise

    async def _wait_gone(self, key: str, start: int, lease: Lease) -> None:
        async def deleted() -> None:
            async with await self.store.watch(key, prefix=False, start_revision=start) as w:
                async for ev in w:
                    if ev.kind is EventKind.DELETE:
                        return

        watcher = asyncio.ensure_future(deleted())
        lost = asyncio.ensure_future(lease.lost.wait())
        try:
            await asyncio.wait({watcher, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not watcher.done():
                watcher.cancel()
            await asyncio.wait({watcher, lost})
        failed = watcher.exception() if watcher.done() and not watcher.cancelled() else None
        if failed is not None and not isinstance(failed, Compacted):
            raise failed

    async def leader(self) -> LeaderInfo | None:
        """The current leader, or None."""
        return _lowest(self.name, (await self.store.range(self.prefix)).kvs)

    async def observe(self) -> AsyncIterator[LeaderInfo | None]:
        """The leader now, then every change of leader (None while there is none)."""
        last: tuple[str, int] | None = ("", -1)
        while True:
            snap = await self.store.range(self.prefix)
            cands = {kv.key: kv for kv in snap.kvs}
            current = _lowest(self.name, cands.values())
            if _ident(current) != last:
                last = _ident(current)
                yield current
            try:
                async with await self.store.watch(self.prefix, start_revision=snap.revision + 1) as w:
                    async for ev in w:
                        if ev.kind is EventKind.PUT:
                            cands[ev.key] = KeyValue(
                                ev.key, ev.value, ev.create_revision, ev.revision, ev.version, ev.lease
                            )
                        else:
                            cands.pop(ev.key, None)
                        current = _lowest(self.name, cands.values())
                        if _ident(current) != last:
                            last = _ident(current)
                            yield current
            except Compacted:
                continue


def _lowest(election: str, kvs: Any) -> LeaderInfo | None:
    best = min(kvs, key=lambda kv: kv.create_revision, default=None)
    return LeaderInfo.of(election, best) if best is not None else None


def _ident(info: LeaderInfo | None) -> tuple[str, int] | None:
    return (info.key, info.token) if info is not None else None
