"""aio devices keep raid superblocks and lvstores across a target restart (SIGKILL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from spdkvirt.spdk.client import SpdkClient
from tests.support.targets import TargetProcess

from .poll import until

SIZE = 64 * 1024 * 1024


def disk(path: Path) -> str:
    with open(path, "wb") as f:
        f.truncate(SIZE)
    return str(path)


async def test_raid_lvstore_lvol_come_back(start_target: Callable[[str], TargetProcess], tmp_path: Path) -> None:
    tp = start_target("a")
    files = [disk(tmp_path / f"d{i}.img") for i in range(2)]
    async with SpdkClient(tp.socket_path, timeout=30) as spdk:
        uuids = []
        for i, f in enumerate(files):
            await spdk.call("bdev_aio_create", {"name": f"aio{i}", "filename": f, "block_size": 512})
            [b] = await spdk.call("bdev_get_bdevs", {"name": f"aio{i}"})
            uuids.append(b["uuid"])
        await spdk.call(
            "bdev_raid_create",
            {"name": "r1", "raid_level": "raid1", "base_bdevs": ["aio0", "aio1"], "superblock": True},
        )
        lvs = await spdk.call("bdev_lvol_create_lvstore", {"bdev_name": "r1", "lvs_name": "lvs"})
        lvol = await spdk.call("bdev_lvol_create", {"lvol_name": "v", "size_in_mib": 8, "lvs_name": "lvs"})

    tp.kill()
    tp.start()
    async with SpdkClient(tp.socket_path, timeout=30) as spdk:
        assert await spdk.call("bdev_get_bdevs") == []  # nothing comes back by itself
        await spdk.call("bdev_aio_create", {"name": "x0", "filename": files[0], "block_size": 512, "uuid": uuids[0]})
        [r] = await spdk.call("bdev_raid_get_bdevs", {"category": "configuring"})
        assert r["name"] == "r1"  # waits for its other member: no degraded start
        await spdk.call("bdev_aio_create", {"name": "x1", "filename": files[1], "block_size": 512, "uuid": uuids[1]})
        await until(lambda: spdk.call("bdev_raid_get_bdevs", {"category": "online"}), lambda rs: len(rs) == 1)
        [store] = await spdk.call("bdev_lvol_get_lvstores")
        assert store["uuid"] == lvs and store["base_bdev"] == "r1"
        [b] = await spdk.call("bdev_get_bdevs", {"name": "lvs/v"})
        assert b["name"] == lvol


async def test_without_the_old_uuid_nothing_comes_back(
    start_target: Callable[[str], TargetProcess], tmp_path: Path
) -> None:
    tp = start_target("a")
    files = [disk(tmp_path / f"d{i}.img") for i in range(2)]
    async with SpdkClient(tp.socket_path, timeout=30) as spdk:
        for i, f in enumerate(files):
            await spdk.call("bdev_aio_create", {"name": f"aio{i}", "filename": f, "block_size": 512})
        await spdk.call(
            "bdev_raid_create",
            {"name": "r1", "raid_level": "raid1", "base_bdevs": ["aio0", "aio1"], "superblock": True},
        )
    tp.kill()
    tp.start()
    async with SpdkClient(tp.socket_path, timeout=30) as spdk:
        for i, f in enumerate(files):
            await spdk.call("bdev_aio_create", {"name": f"aio{i}", "filename": f, "block_size": 512})
        assert await spdk.call("bdev_raid_get_bdevs", {"category": "all"}) == []
    assert [Path(f).stat().st_size for f in files] == [SIZE, SIZE]  # noqa: ASYNC240 - a stat, after the fact
