"""A record an agent cannot read is unknown, never absent: nothing is deleted for it.

Think of a rolling upgrade: a newer controller writes a volume record in a shape this agent does
not know. The agent must keep serving the volume as it last knew it and delete none of its
legs, and pick the record up again once it can read it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from spdkvirt.api.client import ApiClient
from spdkvirt.local import LocalCluster
from spdkvirt.model import names
from spdkvirt.spdk.client import SpdkClient
from spdkvirt.store import keys
from spdkvirt.store.types import Put
from tests.integration.waiting import until


async def leg_lvols(c: LocalCluster) -> set[str]:
    """``node:lvstore/leg`` of every leg lvol on every node."""
    out: set[str] = set()
    for n in c.members:
        async with SpdkClient(n.socket) as spdk:
            for b in await spdk.call("bdev_get_bdevs"):
                out |= {f"{n.node_id}:{a}" for a in b["aliases"] if a.startswith(names.LVSTORE_PREFIX)}
    return out


async def test_an_unreadable_volume_record_keeps_its_legs(tmp_path: Path, target: tuple[str, ...]) -> None:
    async with LocalCluster(tmp_path / "c", nodes=2, devices=1, device_size=128 << 20, target=target) as c:
        await c.wait_ready()
        api = ApiClient(f"unix://{c.api_socket}")
        try:
            await api.call("volume_create", {"name": "v1", "size_bytes": 16 << 20, "redundancy": 2})
            await until(lambda: healthy(api, "v1"), what="v1 healthy")
            legs = await leg_lvols(c)
            assert len(legs) == 2, legs
            assert c.store is not None
            kv = await c.store.get(keys.volume("v1"))
            assert kv is not None
            good: dict[str, Any] = dict(kv.value)
            newer = {k: v for k, v in good.items() if k != "size_bytes"} | {"schema_version": 2, "size": "16MiB"}
            await c.store.backend.txn([], [Put(keys.volume("v1"), newer)], [])  # as a newer version would
            await asyncio.sleep(3 * c.resync_interval)  # several reconcile passes
            assert await leg_lvols(c) == legs, "legs of a volume whose record is unreadable were deleted"
            await c.store.backend.txn([], [Put(keys.volume("v1"), good | {"generation": good["generation"] + 1})], [])
            await until(lambda: healthy(api, "v1"), what="v1 healthy again")
            assert await leg_lvols(c) == legs
        finally:
            await api.close()


async def healthy(api: ApiClient, name: str) -> bool:
    try:
        return bool((await api.call("volume_get", {"name": name}))["state"] == "healthy")
    except Exception:
        return False
