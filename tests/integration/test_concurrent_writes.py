"""Window 6: every read-modify-write of a record compares the record's revision.

A resize decided from a view that has not seen a concurrent change of the same volume (a remap,
say) must not write the older mapping back over it; a remap must not bring back a volume deleted
meanwhile. Here the concurrent change is written straight into the store, as another leader step
would, and the resize follows at once, before the controller's view can have caught up.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from spdkvirt.api.client import ApiClient
from spdkvirt.local import LocalCluster
from spdkvirt.store import Compare, keys
from spdkvirt.store.types import Put
from tests.integration.test_unknown_records import healthy
from tests.integration.waiting import until

MiB = 1 << 20


async def test_a_resize_never_undoes_a_concurrent_change(tmp_path: Path, target: tuple[str, ...]) -> None:
    async with LocalCluster(tmp_path / "c", nodes=2, devices=1, device_size=256 << 20, target=target) as c:
        await c.wait_ready()
        api = ApiClient(f"unix://{c.api_socket}")
        try:
            await api.call("volume_create", {"name": "v1", "size_bytes": 8 * MiB, "redundancy": 2})
            await until(lambda: healthy(api, "v1"), what="v1 healthy")
            assert c.store is not None
            lost, landings = [], 0
            for i in range(1, 21):
                kv = await c.store.get(keys.volume("v1"))
                assert kv is not None
                changed = dict(kv.value, leg_serial=kv.value.get("leg_serial", 0) + 1,
                               generation=kv.value["generation"] + 1)  # fmt: skip
                size = (8 + i) * MiB

                async def change(record: dict[str, Any], revision: int, delay: float) -> bool:
                    """A leader's own read-modify-write (conditional on the revision it read)."""
                    await asyncio.sleep(delay)
                    assert c.store is not None
                    key = keys.volume("v1")
                    r = await c.store.backend.txn([Compare.revision(key, revision)], [Put(key, record)], [])
                    return r.succeeded

                # the change lands while the resize is on its way: decided on a view without it
                landed, _ = await asyncio.gather(
                    change(changed, kv.mod_revision, i % 5 * 0.001),
                    api.call("volume_resize", {"name": "v1", "size_bytes": size}),
                )
                now = await c.store.get(keys.volume("v1"))
                assert now is not None
                if landed and now.value["leg_serial"] != changed["leg_serial"]:
                    lost.append(i)
                assert now.value["size_bytes"] == size
                landings += landed
            assert not lost, f"resizes that undid the change made just before them: {lost}"
            assert landings, "no concurrent change landed: the test proved nothing"
            await until(lambda: healthy(api, "v1"), what="v1 healthy after the resizes")
        finally:
            await api.close()
