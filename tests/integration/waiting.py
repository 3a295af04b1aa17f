"""Waiting for a cluster to get somewhere, with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(check: Callable[[], Awaitable[Any]], within: float = 30.0, what: str = "") -> Any:
    """The first truthy result of ``check()``, polled every 0.1 s; fails the test after ``within`` s."""
    end = time.monotonic() + within
    while not (got := await check()):
        assert time.monotonic() < end, f"timed out: {what}"
        await asyncio.sleep(0.1)
    return got
