"""Leader writes: every record the master writes is guarded by its leadership, in transactions
no larger than the store allows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spdkvirt.store import Compare, LeadershipLost, Put, Store, keys
from spdkvirt.store.backend import MAX_TXN_OPS
from spdkvirt.store.types import Delete


async def put_guarded(store: Store, guard: Compare, records: Sequence[dict[str, Any]]) -> int:
    """Write ``records`` (each under its own key) while ``guard`` holds; returns the last revision.

    Larger sets go in several transactions, each guarded: a leader that loses its leadership half
    way leaves a prefix written, which the next leader finds and completes."""
    revision = 0
    step = MAX_TXN_OPS - 1
    for i in range(0, len(records), step):
        ops = [Put(keys.for_record(r), r) for r in records[i : i + step]]
        r = await store.txn([guard], ops)
        if not r.succeeded:
            raise LeadershipLost("leadership lost while writing")
        revision = r.revision
    return revision


async def delete_guarded(store: Store, guard: Compare, key: str) -> None:
    r = await store.txn([guard], [Delete(key)])
    if not r.succeeded:
        raise LeadershipLost("leadership lost while deleting")
