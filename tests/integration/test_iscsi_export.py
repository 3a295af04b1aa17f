"""An iSCSI export on a local cluster: target node, portal, initiator and CHAP groups on the owner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spdkvirt.api.client import ApiClient
from spdkvirt.api.errors import Refused
from spdkvirt.local import LocalCluster
from spdkvirt.model import names
from spdkvirt.spdk.client import SpdkClient
from tests.integration.waiting import until


async def test_iscsi_export_with_mutual_chap(tmp_path: Path, target: tuple[str, ...]) -> None:
    async with LocalCluster(tmp_path / "c", nodes=2, devices=1, device_size=128 << 20, target=target) as c:
        await c.wait_ready()
        api = ApiClient(f"unix://{c.api_socket}")
        try:
            vol = await api.call("volume_create", {"name": "db1", "size_bytes": 16 << 20, "redundancy": 2})
            chap = {"user": "alice", "secret": "alicesecret01", "mutual_user": "tgt", "mutual_secret": "tgtsecret0001"}
            exp = await api.call("export_create", {
                "volume": "db1", "protocol": "iscsi", "initiators": ["iqn.1994-05.com.redhat:host1"],
                "netmasks": ["127.0.0.0/8"], "chap": chap,
            })  # fmt: skip
            assert exp["iscsi"]["target_name"] == names.volume_iqn("db1")
            try:
                await api.call("export_create", {"volume": "db1", "protocol": "nvmf", "allow_any_host": True})
                raise AssertionError("a second protocol must be refused")
            except Refused as e:
                assert e.data["path"] == "$.protocol"
            try:
                await api.call("export_create", {"volume": "db1", "protocol": "nvmf", "allow_any_host": True,
                                                 "allow_second_protocol": True})  # fmt: skip
                raise AssertionError("SPDK cannot serve one bdev over two protocols: refused")
            except Refused as e:
                assert e.data["path"] == "$.allow_second_protocol"
            async with SpdkClient(c.node(vol["owner_node"]).socket) as spdk:

                async def target_node() -> Any:
                    nodes = await spdk.call("iscsi_get_target_nodes")
                    return next((t for t in nodes if t["name"] == names.volume_iqn("db1")), None)

                t = await until(target_node)
                assert t["luns"] == [{"bdev_name": names.lun("db1"), "lun_id": 0}]
                assert t["require_chap"] and t["mutual_chap"]
                groups = {g["tag"]: g for g in await spdk.call("iscsi_get_initiator_groups")}
                tag = t["pg_ig_maps"][0]["ig_tag"]
                assert groups[tag]["initiators"] == ["iqn.1994-05.com.redhat:host1"]
                auth = {g["tag"]: g for g in await spdk.call("iscsi_get_auth_groups")}
                assert auth[tag]["secrets"][0]["user"] == "alice"
                await api.call("export_delete", {"volume": "db1", "export_id": exp["export_id"]})

                async def gone() -> bool:
                    return await target_node() is None and tag not in {
                        g["tag"] for g in await spdk.call("iscsi_get_initiator_groups")
                    }

                await until(gone)
        finally:
            await api.close()
