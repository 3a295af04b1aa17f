"""raid1 degrade and rebuild, as the controller drives them."""

from __future__ import annotations

from typing import Any

import pytest

from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import SpdkBusy, SpdkNotFound

from .poll import until


async def raid(spdk: SpdkClient, name: str = "r1") -> dict[str, Any]:
    [info] = [r for r in await spdk.call("bdev_raid_get_bdevs", {"category": "all"}) if r["name"] == name]
    return dict(info)


async def test_remove_then_rebuild_onto_a_new_member(spdk: SpdkClient) -> None:
    for name in ("M0", "M1", "M2"):
        await spdk.call("bdev_malloc_create", {"name": name, "num_blocks": 32768, "block_size": 512})
    await spdk.call(
        "bdev_raid_create", {"name": "r1", "raid_level": "raid1", "base_bdevs": ["M0", "M1"], "superblock": True}
    )
    r = await raid(spdk)
    assert r["state"] == "online" and r["num_base_bdevs_operational"] == 2

    assert await spdk.call("bdev_raid_remove_base_bdev", {"name": "M1"}) is True
    r = await raid(spdk)
    # no "degraded" state in SPDK: online with fewer operational members
    assert r["state"] == "online" and r["num_base_bdevs_operational"] == 1
    assert r["base_bdevs_list"][1]["name"] is None
    with pytest.raises(SpdkNotFound):
        await spdk.call("bdev_raid_remove_base_bdev", {"name": "M1"})

    await spdk.call("bdev_raid_set_options", {"process_max_bandwidth_mb_sec": 0})
    assert await spdk.call("bdev_raid_add_base_bdev", {"raid_bdev": "r1", "base_bdev": "M2"}) is True
    done = await until(lambda: raid(spdk), lambda r: "process" not in r and r["num_base_bdevs_operational"] == 2)
    assert [m["name"] for m in done["base_bdevs_list"]] == ["M0", "M2"]


async def test_throttled_rebuild_shows_progress_and_refuses_a_second_add(spdk: SpdkClient) -> None:
    for name in ("M0", "M1", "M2", "M3"):
        await spdk.call("bdev_malloc_create", {"name": name, "num_blocks": 32768, "block_size": 512})
    await spdk.call(
        "bdev_raid_create", {"name": "r1", "raid_level": "raid1", "base_bdevs": ["M0", "M1", "M2"], "superblock": True}
    )
    await spdk.call("bdev_raid_remove_base_bdev", {"name": "M2"})
    await spdk.call("bdev_raid_set_options", {"process_max_bandwidth_mb_sec": 2})
    await spdk.call("bdev_raid_add_base_bdev", {"raid_bdev": "r1", "base_bdev": "M3"})
    running = await until(lambda: raid(spdk), lambda r: "process" in r)
    assert running["process"]["type"] == "rebuild" and running["process"]["target"] == "M3"
    assert 0 <= running["process"]["progress"]["percent"] <= 100
    with pytest.raises(SpdkBusy):  # a second add while a rebuild runs
        await spdk.call("bdev_raid_add_base_bdev", {"raid_bdev": "r1", "base_bdev": "M2"})
    await until(lambda: raid(spdk), lambda r: "process" not in r, within=30)


async def test_member_failure_degrades(spdk: SpdkClient) -> None:
    for name in ("M0", "M1"):
        await spdk.call("bdev_malloc_create", {"name": name, "num_blocks": 32768, "block_size": 512})
    await spdk.call("bdev_raid_create", {"name": "r1", "raid_level": "raid1", "base_bdevs": ["M0", "M1"]})
    await spdk.call("bdev_malloc_delete", {"name": "M0"})  # the device disappears under the raid
    r = await raid(spdk)
    assert r["state"] == "online" and r["num_base_bdevs_operational"] == 1
