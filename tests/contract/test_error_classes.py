"""Each module's way of saying "bad request" maps to the same typed errors."""

from __future__ import annotations

import pytest

from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import SpdkDecodeError, SpdkInvalid, SpdkMethodNotFound, SpdkNotFound, SpdkTimedOut


async def test_decode_failures(spdk: SpdkClient) -> None:
    with pytest.raises(SpdkDecodeError) as bdev:
        await spdk.call("bdev_get_bdevs", {"nmae": "typo"})
    assert bdev.value.code == -32603
    with pytest.raises(SpdkDecodeError) as raid:
        await spdk.call("bdev_raid_get_bdevs", {"category": "bogus"})
    assert raid.value.code == -32700
    with pytest.raises(SpdkDecodeError):
        await spdk.call("bdev_malloc_create", {"num_blocks": 100})


async def test_invalid_and_missing(spdk: SpdkClient) -> None:
    with pytest.raises(SpdkInvalid) as bad:
        await spdk.call("bdev_malloc_create", {"num_blocks": 2048, "block_size": 500})
    assert bad.value.code == -22
    with pytest.raises(SpdkInvalid) as params:
        await spdk.call("spdk_get_version", {})
    assert params.value.code == -32602
    with pytest.raises(SpdkNotFound):
        await spdk.call("bdev_get_bdevs", {"name": "nope"})
    with pytest.raises(SpdkTimedOut):
        await spdk.call("bdev_get_bdevs", {"name": "nope", "timeout": 100})
    with pytest.raises(SpdkMethodNotFound):
        await spdk.call("no_such_method")


async def test_pipelined_calls_come_back_matched(spdk: SpdkClient) -> None:
    reqs = [("bdev_malloc_create", {"name": f"P{i}", "num_blocks": 2048, "block_size": 512}) for i in range(20)]
    names = await spdk.gather(reqs)
    assert names == [f"P{i}" for i in range(20)]
    outcomes = await spdk.gather(
        [("bdev_get_bdevs", {"name": "P3"}), ("bdev_get_bdevs", {"name": "nope"})], return_exceptions=True
    )
    assert outcomes[0][0]["name"] == "P3"
    assert isinstance(outcomes[1], SpdkNotFound)
