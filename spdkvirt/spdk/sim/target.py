"""One simulated spdk_tgt: the bdev table, notifications, examine, per-module state."""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from collections.abc import Iterator
from typing import Any, TypeVar

from .bdev import Bdev
from .errors import EEXIST, EINVAL, ENODEV, errno_error
from .registry import EXAMINERS

NIL_UUID = "00000000-0000-0000-0000-000000000000"
T = TypeVar("T")
B = TypeVar("B", bound=Bdev)


class Target:
    def __init__(self, rpc_poll_ms: float = 0.0) -> None:
        self.rpc_poll_ms = rpc_poll_ms
        self.bdevs: dict[str, Bdev] = {}  # registration order (dicts keep it)
        self.notifications: list[tuple[str, str]] = []
        self._states: dict[type[Any], Any] = {}
        self.bdev_added = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        # fault injection (sim_* methods)
        self.rpc_delays: dict[str, float] = {}
        self.rpc_errors: dict[str, tuple[int, int]] = {}
        self.connections: set[Any] = set()

    # ---- per-module state -----------------------------------------------------------------
    def state(self, cls: type[T]) -> T:
        """The module state object of class cls for this target, made on first use."""
        st = self._states.get(cls)
        if st is None:
            st = self._states[cls] = cls()
        return st

    # ---- lookup ---------------------------------------------------------------------------
    def find_bdev(self, name: str) -> Bdev | None:
        """By name, alias or uuid, as spdk_bdev_get_by_name does."""
        b = self.bdevs.get(name)
        if b is not None:
            return b
        for b in self.bdevs.values():
            if name in b.aliases or b.uuid == name:
                return b
        return None

    def get_bdev(self, name: str) -> Bdev:
        b = self.find_bdev(name)
        if b is None:
            raise errno_error(ENODEV)
        return b

    def get_bdev_of(self, name: str, kind: type[B]) -> B:
        """The bdev called `name` if it is a `kind`; -ENODEV when missing or of another module."""
        b = self.find_bdev(name)
        if not isinstance(b, kind):
            raise errno_error(ENODEV)
        return b

    def name_taken(self, name: str) -> bool:
        return self.find_bdev(name) is not None

    def uuid_taken(self, uuid: str) -> bool:
        return any(b.uuid == uuid for b in self.bdevs.values())

    def iter_bdevs(self) -> Iterator[Bdev]:
        return iter(list(self.bdevs.values()))

    # ---- register / unregister ------------------------------------------------------------
    def check_new(self, name: str, uuid: str | None = None, aliases: list[str] | None = None) -> None:
        """bdev_register's checks: -22 for an empty name; -17 when the name, an alias or the uuid
        (which becomes an alias unless it is the name itself) is already some bdev's name or alias."""
        if not name:
            raise errno_error(EINVAL)
        if self.name_taken(name) or any(self.name_taken(a) for a in aliases or []):
            raise errno_error(EEXIST)
        if uuid is not None and uuid.lower() != NIL_UUID:
            uuid = uuid.lower()
            if uuid != name and (self.uuid_taken(uuid) or self.name_taken(uuid)):
                raise errno_error(EEXIST)

    async def register_bdev(self, bdev: Bdev, examine: bool = True) -> None:
        """Add a bdev, run examine on it (which may register more bdevs), then notify."""
        if bdev.uuid == NIL_UUID:  # a nil uuid means none: bdev_register generates one
            fresh = str(uuidlib.uuid4())
            bdev.aliases = [fresh if a == NIL_UUID else a for a in bdev.aliases]
            bdev.uuid = fresh
        if bdev.uuid == bdev.name:  # the uuid alias is added only when it differs from the name
            bdev.aliases = [a for a in bdev.aliases if a != bdev.uuid]
        self.check_new(bdev.name, bdev.uuid, [a for a in bdev.aliases if a != bdev.uuid])
        self.bdevs[bdev.name] = bdev
        self.bdev_added.set()
        self.bdev_added = asyncio.Event()
        if examine:
            await self.examine(bdev)
        if bdev.name in self.bdevs and self.bdevs[bdev.name] is bdev:
            self.notify("bdev_register", bdev.name)

    async def examine(self, bdev: Bdev) -> None:
        for _order, _name, fn in EXAMINERS:
            if bdev.removed:
                return
            await fn(self, bdev)

    async def unregister_bdev(self, bdev: Bdev) -> None:
        """Hot-remove: users hear of it first, then the bdev is destructed and unregistered."""
        if bdev.removed:
            return
        bdev.removed = True
        for user in bdev.users():
            pending = user.base_removed(bdev)
            if pending is not None:
                await pending
        if self.bdevs.get(bdev.name) is bdev:
            del self.bdevs[bdev.name]
        await bdev.destruct()
        self.notify("bdev_unregister", bdev.name)

    def rename_bdev(self, bdev: Bdev, new_name: str) -> None:
        items = [(new_name if k == bdev.name else k, v) for k, v in self.bdevs.items()]
        bdev.name = new_name
        self.bdevs = dict(items)

    async def wait_for_bdev(self, name: str, timeout_ms: int) -> Bdev | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000.0
        while True:
            b = self.find_bdev(name)
            if b is not None:
                return b
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self.bdev_added.wait(), remaining)
            except TimeoutError:
                return None

    # ---- notifications --------------------------------------------------------------------
    def notify(self, kind: str, ctx: str) -> None:
        self.notifications.append((kind, ctx))

    # ---- background work ------------------------------------------------------------------
    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run background work (rebuilds, reconnects) owned by the target."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def cancel_background(self) -> None:
        """Stop every piece of background work the target still runs (for in-process shutdown)."""
        tasks = [t for t in self._background if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
