"""NVMe-oF exports on a local cluster: hosts, ANA reporting, DH-HMAC-CHAP keys from SPDK's keyring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spdkvirt.api.client import ApiClient
from spdkvirt.api.errors import Refused
from spdkvirt.local import LocalCluster
from spdkvirt.model import names
from spdkvirt.spdk.client import SpdkClient
from tests.integration.waiting import until

HOST = "nqn.2014-08.org.nvmexpress:uuid:0b0c0d0e-1111-2222-3333-444455556666"
KEY = "DHHC-1:00:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWbPNFOT:\n"


async def test_nvmf_export_with_dhchap(tmp_path: Path, target: tuple[str, ...]) -> None:
    key = tmp_path / "key0"
    key.write_text(KEY)
    key.chmod(0o600)
    async with LocalCluster(tmp_path / "c", nodes=2, devices=1, device_size=128 << 20, target=target) as c:
        await c.wait_ready()
        for n in c.members:  # the operator puts the key in every node's keyring
            async with SpdkClient(n.socket) as spdk:
                await spdk.call("keyring_file_add_key", {"name": "key0", "path": str(key)})
        api = ApiClient(f"unix://{c.api_socket}")
        try:
            vol = await api.call("volume_create", {"name": "v1", "size_bytes": 16 << 20, "redundancy": 2})
            with pytest.raises(Refused) as refused:
                await api.call("export_create", {"volume": "v1", "protocol": "nvmf", "allow_any_host": True,
                                                 "dhchap": {"key": "key0"}})  # fmt: skip
            assert refused.value.data["path"] == "$.dhchap"
            exp = await api.call("export_create", {"volume": "v1", "protocol": "nvmf", "hosts": [HOST],
                                                   "dhchap": {"key": "key0"}})  # fmt: skip
            assert exp["nvmf"]["subnqn"] == names.volume_nqn("v1")
            async with SpdkClient(c.node(vol["owner_node"]).socket) as spdk:

                async def subsystem() -> Any:
                    subs = await spdk.call("nvmf_get_subsystems")
                    return next((s for s in subs if s["nqn"] == names.volume_nqn("v1") and s["namespaces"]), None)

                sub = await until(subsystem)
                assert sub["hosts"] == [{"nqn": HOST, "dhchap_key": "key0"}]
                assert not sub["allow_any_host"]
                assert sub["namespaces"][0]["bdev_name"] == names.hold("v1")
                assert sub["namespaces"][0]["uuid"] == vol["uuid"]
        finally:
            await api.close()
