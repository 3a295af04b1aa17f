"""A raid1 leg on another target, reached over NVMe/TCP, fails when its exporter dies."""

from __future__ import annotations

from collections.abc import Callable

from spdkvirt.spdk.client import SpdkClient
from tests.support.targets import TargetProcess

from .conftest import free_port
from .poll import until

NQN = "nqn.2016-06.io.spdk:leg1"
NGUID = "3F1D2C4B5A694E7D8C1B2A3B4C5D6E01"


async def test_remote_leg_degrades_after_ctrlr_loss_timeout(start_target: Callable[[str], TargetProcess]) -> None:
    a, b = start_target("a"), start_target("b")
    port = str(free_port())
    async with SpdkClient(a.socket_path, timeout=30) as exp, SpdkClient(b.socket_path, timeout=30) as own:
        await exp.call("bdev_malloc_create", {"name": "L", "num_blocks": 32768, "block_size": 512})
        await exp.call("nvmf_create_transport", {"trtype": "TCP"})
        await exp.call("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
        await exp.call("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "L", "nguid": NGUID}})
        await exp.call(
            "nvmf_subsystem_add_listener",
            {"nqn": NQN, "listen_address": {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port}},
        )

        names = await own.call(
            "bdev_nvme_attach_controller",
            {
                "name": "nvme0",
                "trtype": "TCP",
                "adrfam": "IPv4",
                "traddr": "127.0.0.1",
                "trsvcid": port,
                "subnqn": NQN,
                "ctrlr_loss_timeout_sec": 2,
                "reconnect_delay_sec": 1,
                "fast_io_fail_timeout_sec": 1,
            },
        )
        assert names == ["nvme0n1"]
        [remote] = await own.call("bdev_get_bdevs", {"name": "nvme0n1"})
        assert remote["uuid"].replace("-", "").upper() == NGUID  # identity comes from the export
        await own.call("bdev_malloc_create", {"name": "local", "num_blocks": 32768, "block_size": 512})
        await own.call(
            "bdev_raid_create",
            {"name": "r1", "raid_level": "raid1", "base_bdevs": ["nvme0n1", "local"], "superblock": True},
        )

        a.kill()  # SIGKILL the exporter
        r = await until(
            lambda: own.call("bdev_raid_get_bdevs", {"category": "all"}),
            lambda rs: rs[0]["num_base_bdevs_operational"] == 1,
            within=15,
        )
        assert r[0]["state"] == "online"
        assert await own.call("bdev_nvme_get_controllers") == []
