"""Out-of-band fencing against a target: what each method leaves serving (simulator or real spdk_tgt).

The SSH leg is left out here (tests/cluster covers it): the fence URL names the target's UNIX
socket (``unix:///...``), as for a target on the controller's own machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.controller import fencing
from spdkvirt.model import names
from spdkvirt.model.records import Fence, Node
from spdkvirt.spdk.client import SpdkClient
from tests.contract.conftest import free_port
from tests.support.targets import TargetProcess

VOLUMES = ("v1", "v2")


async def export_volumes(spdk: SpdkClient, port: int, iscsi_port: int) -> None:
    await spdk.call("nvmf_create_transport", {"trtype": "TCP"})
    await spdk.call(
        "iscsi_create_portal_group", {"tag": 1000, "portals": [{"host": "127.0.0.1", "port": str(iscsi_port)}]}
    )
    await spdk.call("iscsi_create_initiator_group", {"tag": 1001, "initiators": ["ANY"], "netmasks": ["ANY"]})
    for i, v in enumerate(VOLUMES):
        await spdk.call("bdev_malloc_create", {"name": f"M{i}", "num_blocks": 2048, "block_size": 512})
        nqn = names.volume_nqn(v)
        await spdk.call("nvmf_create_subsystem", {"nqn": nqn, "allow_any_host": True, "ana_reporting": i == 0})
        await spdk.call("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": f"M{i}"}})
        address = {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}
        await spdk.call("nvmf_subsystem_add_listener", {"nqn": nqn, "listen_address": address})
        # a namespace claims its bdev: SPDK lets no iSCSI LUN open it, so the target node has its own
        await spdk.call("bdev_malloc_create", {"name": f"S{i}", "num_blocks": 2048, "block_size": 512})
        await spdk.call("iscsi_create_target_node", {
            "name": names.volume_iqn(v), "alias_name": v, "pg_ig_maps": [{"pg_tag": 1000, "ig_tag": 1001}],
            "luns": [{"bdev_name": f"S{i}", "lun_id": 0}], "queue_depth": 64,
        })  # fmt: skip
    # something that is not a volume export stays
    await spdk.call("nvmf_create_subsystem", {"nqn": "nqn.2016-06.io.spdk:other", "allow_any_host": True})
    other = {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}
    await spdk.call("nvmf_subsystem_add_listener", {"nqn": "nqn.2016-06.io.spdk:other", "listen_address": other})


def node_for(tp: TargetProcess, method: str) -> tuple[Node, dict[str, Any]]:
    """The node, fenced through its target's UNIX socket (a target on the controller's machine)."""
    return Node("n1", "127.0.0.1", state="down", fence=Fence(f"unix://{Path(tp.socket_path).resolve()}", method)), {}


async def listeners(spdk: SpdkClient) -> dict[str, int]:
    return {s["nqn"]: len(s["listen_addresses"]) for s in await spdk.call("nvmf_get_subsystems")}


async def test_listeners_method_removes_volume_exports_only(start_target: Callable[[str], TargetProcess]) -> None:
    tp = start_target("a")
    async with SpdkClient(tp.socket_path, timeout=30) as spdk:
        await export_volumes(spdk, free_port(), free_port())
        node, how = node_for(tp, "listeners")
        out = await fencing.fence(node, within=10, **how)
        assert out.ok, out.detail
        assert "2 NVMe-oF volume listener(s) removed, 2 iSCSI target node(s) removed" in out.detail
        got = await listeners(spdk)
        assert all(got[names.volume_nqn(v)] == 0 for v in VOLUMES)
        assert got["nqn.2016-06.io.spdk:other"] == 1
        assert await spdk.call("iscsi_get_target_nodes") == []
        again = await fencing.fence(node, within=10, **how)  # nothing left to do: still fenced
        assert again.ok and "0 NVMe-oF" in again.detail


async def test_ana_method_sets_inaccessible(start_target: Callable[[str], TargetProcess]) -> None:
    tp = start_target("a")
    async with SpdkClient(tp.socket_path, timeout=30) as spdk:
        await export_volumes(spdk, free_port(), free_port())
        node, how = node_for(tp, "ana")
        out = await fencing.fence(node, within=10, **how)
        assert out.ok, out.detail
        got = await listeners(spdk)
        assert got[names.volume_nqn("v2")] == 0  # no ANA reporting there: listener removed
        [listener] = await spdk.call("nvmf_subsystem_get_listeners", {"nqn": names.volume_nqn("v1")})
        assert {s["ana_state"] for s in listener["ana_states"]} == {"inaccessible"}


async def test_stop_method_kills_the_target(start_target: Callable[[str], TargetProcess]) -> None:
    tp = start_target("a")
    node, how = node_for(tp, "stop")
    out = await fencing.fence(node, within=10, **how)
    assert out.ok, out.detail
    assert "stopped" in out.detail
    again = await fencing.fence(node, within=5, **how)  # nothing listens: not serving
    assert again.ok and "not running" in again.detail


async def test_unreachable_is_not_fenced(tmp_path: Path) -> None:
    node = Node("n1", "127.0.0.1", state="down", fence=Fence("ssh://root@127.0.0.1/x.sock", "listeners"))

    def client(url: str, timeout: float) -> SpdkClient:
        raise OSError("ssh: connect to 127.0.0.1:22: network unreachable")

    async def probe(url: str, within: float) -> str | None:
        raise OSError("ssh: connect to 127.0.0.1:22: network unreachable")

    out = await fencing.fence(node, within=2, client=client, probe=probe)
    assert not out.ok and "unreachable" in out.detail


async def test_no_fence_configured() -> None:
    out = await fencing.fence(Node("n1", "127.0.0.1", state="down"))
    assert not out.ok and out.method == "none"


pytestmark = pytest.mark.asyncio
