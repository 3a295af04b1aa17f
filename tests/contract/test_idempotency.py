"""Creating what exists and deleting what is gone: the typed error each SPDK module answers with.

The executor relies on these classes to make its steps idempotent (an existing object is
observed, not re-created; a missing one on delete is success). Where SPDK's answer cannot tell
"gone" from "invalid" (nvmf answers -32602 for both), the test pins that down too, which is why
the executor observes before it acts.
"""

from __future__ import annotations

import pytest

from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import SpdkBusy, SpdkExists, SpdkInvalid, SpdkNotFound, SpdkRpcError

MIB = 1024 * 1024


async def malloc(spdk: SpdkClient, name: str, mib: int = 32) -> str:
    result: str = await spdk.call("bdev_malloc_create", {"name": name, "num_blocks": mib * 2048, "block_size": 512})
    return result


async def test_malloc_twice_and_delete_twice(spdk: SpdkClient) -> None:
    assert await malloc(spdk, "M0") == "M0"
    with pytest.raises(SpdkExists) as exc:
        await malloc(spdk, "M0")
    assert exc.value.code == -17
    assert exc.value.method == "bdev_malloc_create"
    assert exc.value.params == {"name": "M0", "num_blocks": 65536, "block_size": 512}
    assert await spdk.call("bdev_malloc_delete", {"name": "M0"}) is True
    with pytest.raises(SpdkNotFound) as gone:
        await spdk.call("bdev_malloc_delete", {"name": "M0"})
    assert gone.value.code == -19


async def test_lvstore_and_lvol(spdk: SpdkClient) -> None:
    await malloc(spdk, "M0", 64)
    await malloc(spdk, "M1", 64)
    lvs = await spdk.call("bdev_lvol_create_lvstore", {"bdev_name": "M0", "lvs_name": "lvs0", "cluster_sz": MIB})
    with pytest.raises(SpdkBusy):  # the base is claimed by lvs0
        await spdk.call("bdev_lvol_create_lvstore", {"bdev_name": "M0", "lvs_name": "lvs1"})
    with pytest.raises(SpdkExists):  # the name is taken
        await spdk.call("bdev_lvol_create_lvstore", {"bdev_name": "M1", "lvs_name": "lvs0"})
    lvol = await spdk.call("bdev_lvol_create", {"lvol_name": "v0", "size_in_mib": 4, "lvs_name": "lvs0"})
    with pytest.raises(SpdkExists):
        await spdk.call("bdev_lvol_create", {"lvol_name": "v0", "size_in_mib": 4, "lvs_name": "lvs0"})
    [bdev] = await spdk.call("bdev_get_bdevs", {"name": "lvs0/v0"})
    assert bdev["name"] == lvol and bdev["aliases"] == ["lvs0/v0"]
    assert await spdk.call("bdev_lvol_delete", {"name": lvol}) is True
    with pytest.raises(SpdkNotFound):
        await spdk.call("bdev_lvol_delete", {"name": lvol})
    assert await spdk.call("bdev_lvol_delete_lvstore", {"uuid": lvs}) is True
    with pytest.raises(SpdkNotFound):
        await spdk.call("bdev_lvol_delete_lvstore", {"uuid": lvs})


async def test_raid_twice_and_delete_twice(spdk: SpdkClient) -> None:
    for name in ("M0", "M1", "M2", "M3"):
        await malloc(spdk, name)
    params = {"name": "r1", "raid_level": "raid1", "base_bdevs": ["M0", "M1"]}
    assert await spdk.call("bdev_raid_create", params) is True
    with pytest.raises(SpdkExists):
        await spdk.call("bdev_raid_create", {**params, "base_bdevs": ["M2", "M3"]})
    with pytest.raises(SpdkBusy):  # members are claimed
        await spdk.call("bdev_raid_create", {**params, "name": "r2"})
    assert await spdk.call("bdev_raid_delete", {"name": "r1"}) is True
    with pytest.raises(SpdkNotFound):
        await spdk.call("bdev_raid_delete", {"name": "r1"})


async def test_nvmf_subsystem_twice_and_delete_twice(spdk: SpdkClient) -> None:
    nqn = "nqn.2016-06.io.spdk:contract1"
    await spdk.call("nvmf_create_transport", {"trtype": "TCP"})
    await spdk.call("nvmf_create_subsystem", {"nqn": nqn, "allow_any_host": False})
    with pytest.raises(SpdkRpcError) as dup:  # -32603 "Unable to create subsystem": the code alone says no more
        await spdk.call("nvmf_create_subsystem", {"nqn": nqn})
    assert dup.value.code == -32603
    assert type(dup.value) is SpdkRpcError
    [sub] = await spdk.call("nvmf_get_subsystems", {"nqn": nqn})
    assert sub["nqn"] == nqn
    assert await spdk.call("nvmf_delete_subsystem", {"nqn": nqn}) is True
    with pytest.raises(SpdkInvalid) as gone:  # nvmf cannot say "not found": -32602
        await spdk.call("nvmf_delete_subsystem", {"nqn": nqn})
    assert gone.value.code == -32602
    with pytest.raises(SpdkNotFound):  # but get_subsystems can: -19
        await spdk.call("nvmf_get_subsystems", {"nqn": nqn})


async def test_iscsi_target_node_delete_twice(spdk: SpdkClient) -> None:
    await malloc(spdk, "M0")
    await spdk.call("iscsi_create_portal_group", {"tag": 1, "portals": [{"host": "127.0.0.1", "port": "3260"}]})
    await spdk.call("iscsi_create_initiator_group", {"tag": 2, "initiators": ["ANY"], "netmasks": ["ANY"]})
    node = {
        "name": "disk1",
        "alias_name": "d",
        "pg_ig_maps": [{"pg_tag": 1, "ig_tag": 2}],
        "luns": [{"bdev_name": "M0", "lun_id": 0}],
        "queue_depth": 64,
    }
    assert await spdk.call("iscsi_create_target_node", node) is True
    with pytest.raises(SpdkInvalid):
        await spdk.call("iscsi_create_target_node", node)
    iqn = "iqn.2016-06.io.spdk:disk1"
    assert await spdk.call("iscsi_delete_target_node", {"name": iqn}) is True
    with pytest.raises(SpdkNotFound):  # -2
        await spdk.call("iscsi_delete_target_node", {"name": iqn})
