"""Typed wrappers: RAID bdevs (bdev_raid_*).

States are `online`, `configuring` and `offline` only; a degraded raid1 is `online` with fewer
operational members. `bdev_raid_remove_base_bdev` takes the member's name, not the raid's.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import JsonObject, Methods, params


class RaidMethods(Methods):
    async def bdev_raid_create(
        self,
        name: str,
        raid_level: str,
        base_bdevs: Sequence[str],
        *,
        strip_size_kb: int | None = None,
        uuid: str | None = None,
        superblock: bool | None = None,
    ) -> bool:
        """raid_level: raid0, raid1, raid5f or concat; a missing member leaves it `configuring`."""
        return await self._bool(
            "bdev_raid_create",
            params(
                name=name,
                raid_level=raid_level,
                base_bdevs=list(base_bdevs),
                strip_size_kb=strip_size_kb,
                uuid=uuid,
                superblock=superblock,
            ),
        )

    async def bdev_raid_delete(self, name: str, *, clear_sb: bool | None = None) -> bool:
        return await self._bool("bdev_raid_delete", params(name=name, clear_sb=clear_sb))

    async def bdev_raid_get_bdevs(self, category: str = "all") -> list[JsonObject]:
        """category: all, online, configuring or offline."""
        return await self._objects("bdev_raid_get_bdevs", params(category=category))

    async def bdev_raid_add_base_bdev(self, raid_bdev: str, base_bdev: str) -> bool:
        """Add a member; returns before the rebuild it starts (poll `process`)."""
        return await self._bool("bdev_raid_add_base_bdev", params(raid_bdev=raid_bdev, base_bdev=base_bdev))

    async def bdev_raid_remove_base_bdev(self, name: str) -> bool:
        """Remove the member bdev `name` from whatever raid holds it."""
        return await self._bool("bdev_raid_remove_base_bdev", params(name=name))

    async def bdev_raid_set_options(
        self, *, process_window_size_kb: int | None = None, process_max_bandwidth_mb_sec: int | None = None
    ) -> bool:
        """Rebuild settings, read when a process starts (0 MB/s: unlimited); not persisted."""
        return await self._bool(
            "bdev_raid_set_options",
            params(
                process_window_size_kb=process_window_size_kb,
                process_max_bandwidth_mb_sec=process_max_bandwidth_mb_sec,
            ),
        )
