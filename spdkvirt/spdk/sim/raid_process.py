"""Background processes of a raid (the rebuild of a member), window by window.

A rebuild copies the raid's data from the in-sync members to its target through the data
path, one window (process_window_size_kb) at a time, starting at block 0. With
process_max_bandwidth_mb_sec set when it starts, a token bucket paces the windows as SPDK's
does: each window spends the size of the previous one, the bucket holds at most one
millisecond's worth, and a window may start while the balance is positive. Raid writes wait
while a window is being copied, so that the copy never overwrites newer data.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .raid_bdev import BaseInfo

MIB = 1024 * 1024


class ProcessOwner(Protocol):
    """What a process needs from its raid."""

    num_blocks: int
    block_size: int

    async def copy_window(self, target: BaseInfo, offset_blocks: int, num_blocks: int) -> int: ...

    async def process_finished(self, process: RaidProcess) -> None: ...


class RaidProcess:
    """One running rebuild; `window_offset` is its progress in raid blocks."""

    kind = "rebuild"

    def __init__(self, raid: ProcessOwner, target: BaseInfo, window_kb: int, max_bandwidth_mb: int) -> None:
        self.raid = raid
        self.target = target
        self.window_offset = 0
        self.window_size = 0
        self.max_window = max(-(-window_kb * 1024 // raid.block_size), 1)
        self.status = 0
        self.stopping = False
        self.lock = asyncio.Lock()
        self.done = asyncio.Event()
        self._wake = asyncio.Event()
        self._rate = max_bandwidth_mb * MIB  # bytes per second, 0 = unlimited
        self._bucket_max = self._rate / 1000.0
        self._available = 0.0
        self._last = time.monotonic()

    def stop(self, status: int) -> None:
        """Ask the process to stop at the next window boundary with this status."""
        if self.status == 0:
            self.status = status
        self.stopping = True
        self._wake.set()

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "target": self.target.name,
            "progress": {
                "blocks": self.window_offset,
                "percent": int(self.window_offset * 100.0 / self.raid.num_blocks) if self.raid.num_blocks else 0,
            },
        }

    async def run(self) -> None:
        try:
            await self._run_windows()
        finally:
            await self.raid.process_finished(self)
            self.done.set()

    async def _run_windows(self) -> None:
        while not self.stopping:
            total = self.raid.num_blocks
            if self.window_offset >= total:
                return
            self.max_window = min(total - self.window_offset, self.max_window)
            if self._rate and not await self._take_tokens():
                return
            async with self.lock:
                if self.stopping:
                    return
                count = min(self.max_window, self.raid.num_blocks - self.window_offset)
                rc = await self.raid.copy_window(self.target, self.window_offset, count)
                if rc:
                    self.stop(rc)
                    return
                self.window_size = count
                self.window_offset += count
            await asyncio.sleep(0)

    def _refill(self) -> bool:
        now = time.monotonic()
        self._available = min(self._bucket_max, self._available + (now - self._last) * self._rate)
        self._last = now
        if self._available > 0.0:
            self._available -= self.window_size * self.raid.block_size
            return True
        return False

    async def _take_tokens(self) -> bool:
        """Wait until the bucket allows the next window; False if stopped meanwhile."""
        while not self._refill():
            wait = max(-self._available / self._rate, 0.0005)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
            if self.stopping:
                return False
        return not self.stopping
