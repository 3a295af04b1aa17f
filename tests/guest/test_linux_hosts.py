"""Linux's own initiators write and verify mirrored volumes over iSCSI and NVMe/TCP, while a leg
is pulled (its device's aio bdev deleted) and rebuilt elsewhere.

Data is checked end to end: fio in the guest writes blocks that carry their own offset and crc32c,
reads them back while it writes, and reads the whole region again after the fault. Real SPDK
only for now: the simulator does not serve Linux's initiators yet (its NVMe/TCP and iSCSI wires
are its own), so in CI this skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.api.client import ApiClient
from spdkvirt.local import LocalCluster
from spdkvirt.model import names
from spdkvirt.spdk.client import SpdkClient
from tests.guest.linux import SCRIPTS, build_image, kit, run_guest
from tests.integration.waiting import until
from tests.support.targets import REAL_ENV, TargetProcess, make_target, real_command

pytestmark = [
    pytest.mark.skipif(
        real_command() is None,
        reason=f"needs a real spdk_tgt ({REAL_ENV}): the simulator does not serve Linux's initiators yet",
    ),
    pytest.mark.skipif(kit() is None, reason="the guest kit (shared/guest) is not there"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the guest image is built as root (debootstrap)"),
]

MIB = 1 << 20


@pytest.fixture(scope="module")
def image() -> Path:
    guest = kit()
    assert guest is not None
    return build_image(guest)


@pytest.fixture
def targets(tmp_path: Path) -> Iterator[list[TargetProcess]]:
    started = [make_target("real", tmp_path, f"t{i}", ["-s", "2048"]) for i in (1, 2)]
    try:
        for t in started:
            t.start()
        yield started
    finally:
        for t in started:
            t.kill()


async def pull_non_owner_legs(c: LocalCluster, api: ApiClient, vols: list[str]) -> list[tuple[str, str]]:
    """Delete the aio bdev under the leg of each volume that is not on its owner."""
    pulled: list[tuple[str, str]] = []
    for name in vols:
        v = await api.call("volume_get", {"name": name})
        for leg in v["legs"]:
            spot = (leg["node"], leg["device"])
            if leg["node"] != v["owner_node"] and spot not in pulled:
                pulled.append(spot)
    for node, device in pulled:
        async with SpdkClient(c.node(node).socket) as spdk:
            await spdk.call("bdev_aio_delete", {"name": device})
    return pulled


async def healthy_without(api: ApiClient, name: str, pulled: list[tuple[str, str]]) -> Any:
    v = await api.call("volume_get", {"name": name})
    legs = v["legs"]
    ok = v["state"] == "healthy" and len(legs) == 2 and all(x["state"] == "in_sync" for x in legs)
    return ok and not any((x["node"], x["device"]) in pulled for x in legs)


async def test_mirrored_volumes_verify_over_iscsi_and_nvmf_while_a_leg_is_pulled(
    tmp_path: Path, image: Path, targets: list[TargetProcess]
) -> None:
    guest = kit()
    assert guest is not None
    sockets = [t.socket_path for t in targets]
    async with LocalCluster(tmp_path / "c", sockets=sockets, devices=2, device_size=256 * MIB) as c:
        await c.wait_ready(60)
        api = ApiClient(f"unix://{c.api_socket}")
        try:
            for name in ("vi", "vn"):
                await api.call("volume_create", {"name": name, "size_bytes": 64 * MIB, "redundancy": 2})
            await until(lambda: all_healthy(api, ("vi", "vn")), 60, "volumes healthy")
            await api.call("export_create", {"volume": "vi", "protocol": "iscsi"})
            await api.call("export_create", {"volume": "vn", "protocol": "nvmf", "allow_any_host": True})
            owner = {n: (await api.call("volume_get", {"name": n}))["owner_node"] for n in ("vi", "vn")}
            pulled: list[tuple[str, str]] = []

            async def on_line(line: str) -> None:
                if line.startswith("FAULT-WINDOW-OPEN"):
                    pulled.extend(await pull_non_owner_legs(c, api, ["vi", "vn"]))

            params = {
                "IQN": names.volume_iqn("vi"), "ISCSI_PORT": str(c.node(owner["vi"]).iscsi_port),
                "NQN": names.volume_nqn("vn"), "NVME_PORT": str(c.node(owner["vn"]).port),
                "SIZE": "32M", "RUNTIME": "20",
            }  # fmt: skip
            run = await run_guest(guest, image, SCRIPTS / "two-protocols-verify.sh", params, on_line)
            (tmp_path / "guest.log").write_text("\n".join(run.lines) + "\n")
            assert pulled, "the guest never opened its fault window:\n" + run.tail()
            assert run.value("VERIFY_ERRORS") == 0, run.tail()
            assert run.value("IO_ERRORS") == 0, run.tail()
            assert run.rc == 0, run.tail()
            for name in ("vi", "vn"):
                await until(lambda n=name: healthy_without(api, n, pulled), 60, f"{name} rebuilt off the pulled device")
        finally:
            await api.close()


async def all_healthy(api: ApiClient, vols: tuple[str, ...]) -> bool:
    for name in vols:
        if (await api.call("volume_get", {"name": name}))["state"] != "healthy":
            return False
    return True
