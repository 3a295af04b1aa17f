"""Leases: keys attached to a lease vanish when it expires; a keepalive task keeps it alive.

``lost`` is set when the lease is known gone (expired, revoked, or not renewed within its TTL because
the store could not be reached) — whoever relied on it (a leader, a node's liveness key) must stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType

from spdkvirt.store.backend import Backend
from spdkvirt.store.errors import LeaseNotFound, StoreError


class Lease:
    """A granted lease. Use :meth:`Store.grant_lease`; ``async with`` revokes it on exit."""

    def __init__(self, backend: Backend, lease_id: int, ttl: int) -> None:
        self.id = lease_id
        self.ttl = ttl
        self.lost = asyncio.Event()
        self._backend = backend
        self._task: asyncio.Task[None] | None = None
        self._renewed = time.monotonic()
        self._abandoned = False

    def __repr__(self) -> str:
        return f"Lease({self.id:016x}, ttl={self.ttl})"

    @property
    def renewed(self) -> float:
        """When (monotonic) the last successful renewal was sent: the lease lasts at least ``ttl``
        seconds from then, whatever the store says later."""
        return self._renewed

    def start_keepalive(self, interval: float | None = None) -> None:
        """Renew the lease every ``interval`` seconds (default: a third of the TTL) until stopped."""
        if self._task is None or self._task.done():
            every = interval if interval is not None else max(self.ttl / 3, 0.1)
            self._task = asyncio.get_running_loop().create_task(self._keepalive(every), name=repr(self))

    async def _keepalive(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            left = self._renewed + self.ttl - time.monotonic()
            if left <= 0:
                self.lost.set()
                return
            try:
                async with asyncio.timeout(left):
                    await self.keepalive_once()
            except LeaseNotFound:
                self.lost.set()
                return
            except (StoreError, TimeoutError):
                continue

    async def keepalive_once(self) -> int:
        """Renew once; returns the TTL. Raises LeaseNotFound (and sets ``lost``) if it is gone."""
        started = time.monotonic()
        try:
            ttl = await self._backend.lease_keepalive(self.id)
        except LeaseNotFound:
            self.lost.set()
            raise
        self._renewed = started
        return ttl

    async def time_to_live(self) -> int | None:
        """Seconds left, or None if the lease no longer exists."""
        return await self._backend.lease_ttl(self.id)

    def _stop(self) -> asyncio.Task[None] | None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    def abandon(self) -> None:
        """Stop renewing without revoking, as if this process had died: the lease runs out by
        itself, and a later :meth:`revoke` does nothing."""
        self._abandoned = True
        self._stop()

    async def revoke(self) -> None:
        """End the lease now; its keys are deleted. Does nothing if it is already gone or abandoned."""
        task = self._stop()
        if self._abandoned:
            return
        if task is not None:
            await asyncio.wait({task})
        with contextlib.suppress(LeaseNotFound):
            await self._backend.lease_revoke(self.id)
        self.lost.set()

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.revoke()
