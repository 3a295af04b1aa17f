"""Leader writes: every record the master writes is guarded by its leadership, in transactions
no larger than the store allows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spdkvirt.store import Compare, LeadershipLost, Put, Store, keys
from spdkvirt.store.backend import MAX_TXN_OPS
from spdkvirt.store.types import Delete


class Stale(Exception):
    """A record changed since it was read (its revision moved): nothing of that transaction was
    written; read again and decide again."""


async def put_guarded(
    store: Store, guard: Compare, records: Sequence[dict[str, Any]], revisions: Mapping[str, int] | None = None
) -> int:
    """Write ``records`` (each under its own key) while ``guard`` holds; returns the last revision.

    ``revisions``: for the keys named, the revision the record was read at (0: absent): each write
    is also conditional on it, so a read-modify-write never undoes a change made meanwhile, nor
    brings back a record deleted meanwhile; raises :class:`Stale` then.

    Larger sets go in several transactions, each guarded: a leader that loses its leadership half
    way leaves a prefix written, which the next leader finds and completes."""
    revision = 0
    step = MAX_TXN_OPS - 1
    for i in range(0, len(records), step):
        batch = records[i : i + step]
        ops = [Put(keys.for_record(r), r) for r in batch]
        checks = [guard]
        if revisions:
            checks += [Compare.revision(op.key, revisions[op.key]) for op in ops if op.key in revisions]
        r = await store.txn(checks, ops)
        if not r.succeeded:
            if len(checks) > 1 and (await store.txn([guard], [])).succeeded:
                raise Stale(f"{len(checks) - 1} record(s) changed since they were read")
            raise LeadershipLost("leadership lost while writing")
        revision = r.revision
    return revision


async def delete_guarded(store: Store, guard: Compare, key: str) -> None:
    r = await store.txn([guard], [Delete(key)])
    if not r.succeeded:
        raise LeadershipLost("leadership lost while deleting")
