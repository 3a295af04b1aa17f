"""An in-memory copy of some kinds of records, kept up to date from the store.

Agents and the master both work from such a copy: read once in full, then every change in order
(:meth:`Store.follow`), each record parsed once into its value type. Records were checked against
their schemas when written, but a newer version of spdkvirt may write a shape this one cannot read.
Such a record is *unknown*, never absent: the value last read at its key stays (if there was one),
the key is listed in ``unparsed``, and a caller that would remove what no record wants must not
while any record of that kind is unknown. ``changed`` fires after any change; ``synced`` once every
kind has had its first full read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spdkvirt.store import Resync, Store, keys
from spdkvirt.store.types import EventKind

log = logging.getLogger(__name__)

Parser = Callable[[Mapping[str, Any]], Any]
#: called with (kind, key, old value or None, new value or None) after each change
Listener = Callable[[str, str, Any, Any], None]


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait until each has ended, whatever it ended with; empties the list."""
    pending = list(tasks)
    tasks.clear()
    for t in pending:
        t.cancel()
    for t in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


@dataclass
class Entry:
    value: Any
    mod_revision: int
    record: Mapping[str, Any] = field(repr=False, default_factory=dict)


class Mirror:
    def __init__(self, store: Store, parsers: Mapping[str, Parser]) -> None:
        self.store = store
        self.parsers = dict(parsers)
        self.data: dict[str, dict[str, Entry]] = {kind: {} for kind in parsers}
        self.unparsed: dict[str, dict[str, str]] = {kind: {} for kind in parsers}  # kind -> key -> why
        self.changed = asyncio.Event()
        self.synced = asyncio.Event()
        self.revision = 0
        self.listeners: list[Listener] = []
        self._ready: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for kind in self.parsers:
            self._tasks.append(asyncio.get_running_loop().create_task(self._follow(kind), name=f"mirror:{kind}"))

    async def close(self) -> None:
        await cancel_all(self._tasks)

    def values(self, kind: str) -> list[Any]:
        return [e.value for e in self.data[kind].values()]

    def get(self, kind: str, key: str) -> Entry | None:
        return self.data[kind].get(key)

    def complete(self, *kinds: str) -> bool:
        """Whether every record of these kinds could be read (so what none wants may go)."""
        return not any(self.unparsed[k] for k in kinds)

    def _parse(self, kind: str, key: str, record: Mapping[str, Any], revision: int) -> Entry | None:
        try:
            entry = Entry(self.parsers[kind](record), revision, record)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if key not in self.unparsed[kind]:
                log.error("cannot read %s (%s): keeping it as last read; removing nothing it may want", key, e)
            self.unparsed[kind][key] = f"{type(e).__name__}: {e}"
            return None
        self.unparsed[kind].pop(key, None)
        return entry

    def _set(self, kind: str, key: str, entry: Entry | None) -> None:
        table = self.data[kind]
        old = table.get(key)
        if entry is None:
            table.pop(key, None)
        else:
            table[key] = entry
        for listener in self.listeners:
            listener(kind, key, old.value if old else None, entry.value if entry else None)

    async def _follow(self, kind: str) -> None:
        while True:
            try:
                async for item in self.store.follow(keys.prefix(kind), validate=False):
                    if isinstance(item, Resync):
                        fresh = {kv.key: self._parse(kind, kv.key, kv.value, kv.mod_revision) for kv in item.kvs}
                        for key in set(self.unparsed[kind]) - set(fresh):
                            del self.unparsed[kind][key]
                        for key in set(self.data[kind]) - set(fresh):
                            self._set(kind, key, None)
                        for key, entry in fresh.items():
                            if entry is not None:
                                self._set(kind, key, entry)
                        self.revision = max(self.revision, item.revision)
                        self._ready.add(kind)
                        if self._ready == set(self.parsers):
                            self.synced.set()
                    else:
                        if item.kind == EventKind.DELETE:
                            self.unparsed[kind].pop(item.key, None)
                            self._set(kind, item.key, None)
                        else:
                            entry = self._parse(kind, item.key, item.value, item.revision)
                            if entry is not None:  # unknown: the value last read stays
                                self._set(kind, item.key, entry)
                        self.revision = max(self.revision, item.revision)
                    self.changed.set()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("following %s: %s; retrying", kind, e)
                await asyncio.sleep(0.5)
