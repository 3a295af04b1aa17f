"""Polling with a deadline, for state that SPDK changes in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def until(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], within: float = 20.0, interval: float = 0.05
) -> T:
    """Call probe until ok(result); the last result is returned, or AssertionError at the deadline."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within} s; last value: {value!r}")
        await asyncio.sleep(interval)


def raid_info(bdevs: list[dict[str, Any]]) -> dict[str, Any]:
    info: dict[str, Any] = bdevs[0]["driver_specific"]["raid"]
    return info
