"""Protocol steps as the store shows them, for killing a controller at one: a point is
``phase:before_acks`` (the phase is written) or ``phase:after_acks`` (every node it names answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from spdkvirt.store import Store, keys

#: where a controller can be killed: as a phase is written, or once every node named has answered it
POINTS = tuple(f"{p}:{w}" for p in ("quiescing", "remapping", "resuming") for w in ("before_acks", "after_acks"))


async def last_closed(store: Store) -> int:
    """The number of the newest epoch that is over (done or aborted), 0 if none is."""
    epochs = [kv.value for kv in (await store.range(keys.prefix("epoch"))).kvs]
    return max((int(e["number"]) for e in epochs if e["phase"] in ("done", "aborted")), default=0)


async def reach(store: Store, phase: str, since: int, watching: asyncio.Event | None = None) -> dict[str, Any]:
    """The first epoch numbered above ``since`` once the store shows it in ``phase``."""
    async with await store.watch(keys.ROOT) as w:
        if watching is not None:
            watching.set()
        for kv in (await store.range(keys.prefix("epoch"))).kvs:
            if kv.value["number"] > since and kv.value["phase"] == phase:
                return dict(kv.value)
        async for ev in w:
            value = ev.value if isinstance(ev.value, dict) else {}
            if value.get("kind") == "epoch" and value["number"] > since and value["phase"] == phase:
                return value
    raise AssertionError("the watch ended")


async def answered(store: Store, epoch: dict[str, Any], phase: str) -> bool:
    """Whether every node the epoch affects has answered ``phase`` under its leader."""
    acks = [kv.value for kv in (await store.range(keys.acks(epoch["number"]))).kvs]
    said = {a["node"] for a in acks if a["phase"] == phase and a["leader_token"] == epoch["leader_token"]}
    return set(epoch["affected_nodes"]) <= said


async def until_answered(store: Store, epoch: dict[str, Any], phase: str, within: float) -> bool:
    end = time.monotonic() + within
    while not await answered(store, epoch, phase):
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.02)
    return True


async def at_point(store: Store, point: str, within: float) -> bool:
    """Wait (up to ``within`` seconds) until an epoch open now or opened later reaches ``point``;
    whether one did."""
    phase, _, when = point.partition(":")
    end = time.monotonic() + within
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            epoch = await reach(store, phase, await last_closed(store))
            return when != "after_acks" or await until_answered(store, epoch, phase, end - time.monotonic())
    return False
