"""bdev_nvme against the simulator's own NVMe-oF target, both in one process over 127.0.0.1.

Two simulated targets share an event loop: `exp` exports bdevs over NVMe/TCP, `host` attaches
them. This checks what the replayed transcript cannot reach: data through the wire, namespace
events (add, remove, resize), ANA states, host removal, multipath and failover paths, DH-HMAC-CHAP
keys, and I/O that waits for a reconnect and fails at fast_io_fail_timeout_sec.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.spdk.sim import nvme_tcp
from spdkvirt.spdk.sim.errors import RpcError
from spdkvirt.spdk.sim.modules import load_all
from spdkvirt.spdk.sim.nvme import NvmeState
from spdkvirt.spdk.sim.server import Server
from spdkvirt.spdk.sim.target import Target

NQN = "nqn.2016-06.io.spdk:cnode1"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:7e0a3b56-2f0e-4b1c-9a51-3c1f4e2d9a01"
NGUID = "3F1D2C4B5A694E7D8C1B2A3B4C5D6E01"


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


class Sim:
    def __init__(self) -> None:
        self.target = Target()
        self.server = Server(self.target)

    async def __call__(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.server.call(method, params)

    async def code(self, method: str, params: dict[str, Any] | None = None) -> int:
        with pytest.raises(RpcError) as err:
            await self(method, params)
        return err.value.code

    async def close(self) -> None:
        for owner in list(self.target.state(NvmeState).ctrlrs.values()):
            for ctrlr in list(owner.ctrlrs):
                await ctrlr.delete()
        tcp = self.target.state(nvme_tcp.TcpState)
        for traddr, trsvcid in list(tcp.servers):
            await nvme_tcp.unlisten(self.target, traddr, trsvcid)
        await self.target.cancel_background()
        await asyncio.sleep(0.05)


class Pair:
    def __init__(self) -> None:
        self.exp = Sim()
        self.host = Sim()
        self.port = free_port()

    def address(self, port: str | None = None) -> dict[str, str]:
        return {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port or self.port}

    async def export(self, bdev: str = "M0", *, ana: bool = False, any_host: bool = True, nsid: int = 1) -> None:
        await self.exp("nvmf_create_transport", {"trtype": "TCP"})
        await self.exp(
            "nvmf_create_subsystem",
            {"nqn": NQN, "allow_any_host": any_host, "ana_reporting": ana, "serial_number": "SN1", "model_number": "M"},
        )
        await self.exp(
            "nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": bdev, "nguid": NGUID, "nsid": nsid}}
        )
        await self.listen(self.port)

    async def listen(self, port: str) -> None:
        await self.exp("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": self.address(port)})

    async def attach(self, port: str | None = None, **extra: Any) -> Any:
        params = {"name": "nvme0", "subnqn": NQN, **self.address(port), **extra}
        return await self.host("bdev_nvme_attach_controller", params)

    async def ctrlrs(self) -> list[dict[str, Any]]:
        [entry] = await self.host("bdev_nvme_get_controllers", {"name": "nvme0"})
        return list(entry["ctrlrs"])


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    load_all()
    p = Pair()
    await p.exp("bdev_malloc_create", {"name": "M0", "num_blocks": 8192, "block_size": 512})
    try:
        yield p
    finally:
        await p.host.close()
        await p.exp.close()


async def until(probe: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await probe():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_data_travels_to_the_exported_bdev(pair: Pair) -> None:
    await pair.export()
    assert await pair.attach() == ["nvme0n1"]
    leg = pair.host.target.get_bdev("nvme0n1")
    base = pair.exp.target.get_bdev("M0")
    payload = os.urandom(4096)
    await leg.write(512 * 100, payload)
    assert await base.read(512 * 100, 4096) == payload
    await base.write(0, b"\x5a" * 512)
    assert await leg.read(0, 512) == b"\x5a" * 512
    [info] = await pair.host("bdev_get_bdevs", {"name": "nvme0n1"})
    assert info["uuid"] == "3f1d2c4b-5a69-4e7d-8c1b-2a3b4c5d6e01"
    assert info["driver_specific"]["nvme"][0]["ctrlr_data"]["serial_number"] == "SN1"
    assert info["optimal_write_size"] == 256 and info["preferred_write_granularity"] == 1
    # the exported bdev is claimed by the namespace; the host's is free
    assert info["claimed"] is False


async def test_namespace_events_add_resize_and_remove(pair: Pair) -> None:
    await pair.exp("bdev_null_create", {"name": "N1", "num_blocks": 1024, "block_size": 512})
    await pair.export()
    await pair.attach()
    await pair.exp("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "N1", "nsid": 2}})
    await until(lambda: _has(pair.host, "nvme0n2"))
    [n2] = await pair.host("bdev_get_bdevs", {"name": "nvme0n2"})
    assert n2["supported_io_types"]["unmap"] is False  # not every namespace can unmap any more

    await pair.exp("bdev_null_resize", {"name": "N1", "new_size": 1})
    await until(lambda: _blocks(pair.host, "nvme0n2", 2048))
    events = [(e["type"], e["ctx"]) for e in await pair.host("notify_get_notifications", {})]
    assert ("bdev_resize", "nvme0n2") in events

    await pair.exp("nvmf_subsystem_remove_ns", {"nqn": NQN, "nsid": 2})
    await until(lambda: _gone(pair.host, "nvme0n2"))
    assert await _has(pair.host, "nvme0n1")


async def test_namespace_visibility_per_host(pair: Pair) -> None:
    await pair.exp("bdev_malloc_create", {"name": "M1", "num_blocks": 2048, "block_size": 512})
    await pair.export()
    await pair.exp(
        "nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "M1", "nsid": 2, "no_auto_visible": True}}
    )
    assert await pair.attach(hostnqn=HOSTNQN) == ["nvme0n1"]
    await pair.exp("nvmf_ns_add_host", {"nqn": NQN, "nsid": 2, "host": HOSTNQN})
    await until(lambda: _has(pair.host, "nvme0n2"))
    await pair.exp("nvmf_ns_remove_host", {"nqn": NQN, "nsid": 2, "host": HOSTNQN})
    await until(lambda: _gone(pair.host, "nvme0n2"))


async def test_controller_ids_follow_the_subsystem(pair: Pair) -> None:
    await pair.exp("nvmf_create_transport", {"trtype": "TCP"})
    await pair.exp("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True, "min_cntlid": 5, "max_cntlid": 6})
    await pair.listen(pair.port)
    await pair.attach()
    assert [c["cntlid"] for c in await pair.ctrlrs()] == [5]
    second = free_port()
    await pair.listen(second)
    await pair.attach(second)
    assert [c["cntlid"] for c in await pair.ctrlrs()] == [5, 6]
    third = free_port()
    await pair.listen(third)
    assert (
        await pair.host.code("bdev_nvme_attach_controller", {"name": "nvme0", "subnqn": NQN, **pair.address(third)})
        == -5
    )


async def test_ana_inaccessible_queues_io_until_the_path_is_back(pair: Pair) -> None:
    await pair.export(ana=True)
    await pair.attach()
    leg = pair.host.target.get_bdev("nvme0n1")
    await pair.exp(
        "nvmf_subsystem_listener_set_ana_state",
        {"nqn": NQN, "listen_address": pair.address(), "ana_state": "inaccessible"},
    )
    await until(lambda: _ana(pair.host, "inaccessible"))
    write = asyncio.ensure_future(leg.write(0, b"\x01" * 512))
    await asyncio.sleep(1.2)
    assert not write.done()  # queued: the path may come back
    await pair.exp(
        "nvmf_subsystem_listener_set_ana_state",
        {"nqn": NQN, "listen_address": pair.address(), "ana_state": "optimized"},
    )
    await asyncio.wait_for(write, 3)
    assert await pair.exp.target.get_bdev("M0").read(0, 512) == b"\x01" * 512


async def test_failed_exported_io_is_retried_three_times(pair: Pair) -> None:
    await pair.exp("bdev_error_create", {"base_name": "M0"})
    await pair.export("EE_M0")
    await pair.attach()
    leg = pair.host.target.get_bdev("nvme0n1")
    inject = {"name": "EE_M0", "io_type": "write", "error_type": "failure"}
    await pair.exp("bdev_error_inject_error", {**inject, "num": 3})
    await leg.write(0, b"\x06" * 512)  # the fourth try goes through
    await pair.exp("bdev_error_inject_error", {**inject, "num": 4})
    with pytest.raises(RpcError):
        await leg.write(0, b"\x07" * 512)
    assert leg.stats.io_error == {"nvme_error": 1}
    assert await pair.exp.target.get_bdev("M0").read(0, 512) == b"\x06" * 512


async def test_removed_host_loses_its_controller(pair: Pair) -> None:
    await pair.export(any_host=False)
    assert await pair.host.code("bdev_nvme_attach_controller", {"name": "nvme0", "subnqn": NQN, **pair.address()}) == -5
    await pair.exp("nvmf_subsystem_add_host", {"nqn": NQN, "host": HOSTNQN})
    await pair.attach(hostnqn=HOSTNQN, ctrlr_loss_timeout_sec=2, reconnect_delay_sec=1)
    [ctrlr] = await pair.exp("nvmf_subsystem_get_controllers", {"nqn": NQN})
    assert ctrlr["hostnqn"] == HOSTNQN
    await pair.exp("nvmf_subsystem_remove_host", {"nqn": NQN, "host": HOSTNQN})
    assert await pair.exp("nvmf_subsystem_get_controllers", {"nqn": NQN}) == []
    await until(lambda: _state(pair, "reconnect_is_delayed"))
    await until(lambda: _no_controllers(pair.host), within=5)
    assert await _gone(pair.host, "nvme0n1")


async def test_failed_io_after_fast_io_fail_timeout(pair: Pair) -> None:
    await pair.export()
    await pair.attach(ctrlr_loss_timeout_sec=6, reconnect_delay_sec=1, fast_io_fail_timeout_sec=2)
    leg = pair.host.target.get_bdev("nvme0n1")
    await pair.exp("nvmf_subsystem_remove_listener", {"nqn": NQN, "listen_address": pair.address()})
    await until(lambda: _state(pair, "reconnect_is_delayed"))
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(RpcError):
        await leg.write(0, b"\x02" * 512)
    assert 1.0 <= loop.time() - start <= 4.0  # held while reconnecting, failed after fast_io_fail
    assert await _has(pair.host, "nvme0n1")  # the bdev itself stays until the loss timeout


async def test_multipath_and_failover_paths(pair: Pair) -> None:
    await pair.export(ana=True)
    second = free_port()
    await pair.listen(second)
    await pair.attach()
    assert await pair.attach(second) == ["nvme0n1"]  # a second controller, same bdev
    ctrlrs = await pair.ctrlrs()
    assert [c["cntlid"] for c in ctrlrs] == [1, 2]
    [info] = await pair.host("bdev_get_bdevs", {"name": "nvme0n1"})
    assert [p["trid"]["trsvcid"] for p in info["driver_specific"]["nvme"]] == [pair.port, second]
    assert info["driver_specific"]["nvme"][0]["ns_data"]["ana_state"] == "optimized"
    assert (
        await pair.host.code("bdev_nvme_attach_controller", {"name": "nvme0", "subnqn": NQN, **pair.address()}) == -114
    )
    # detaching one path leaves the other
    assert await pair.host("bdev_nvme_detach_controller", {"name": "nvme0", "trsvcid": second}) is True
    assert [c["trid"]["trsvcid"] for c in await pair.ctrlrs()] == [pair.port]
    assert await pair.host.code("bdev_nvme_detach_controller", {"name": "nvme0", "trsvcid": "1"}) == -6

    # the mode of a name cannot change
    assert (
        await pair.host.code(
            "bdev_nvme_attach_controller",
            {"name": "nvme0", "subnqn": NQN, **pair.address(second), "multipath": "failover"},
        )
        == -22
    )
    # failover mode keeps the second address as an alternate trid of the same controller
    assert await pair.host("bdev_nvme_detach_controller", {"name": "nvme0"}) is True
    assert await pair.attach(multipath="failover") == ["nvme0n1"]
    assert await pair.attach(second, multipath="failover") == []
    [ctrlr] = await pair.ctrlrs()
    assert ctrlr["alternate_trids"][0]["trsvcid"] == second
    await pair.exp("nvmf_subsystem_remove_listener", {"nqn": NQN, "listen_address": pair.address()})
    await until(lambda: _active_port(pair, second))
    leg = pair.host.target.get_bdev("nvme0n1")
    await asyncio.wait_for(leg.write(0, b"\x03" * 512), 5)


async def test_dhchap_keys_from_the_keyring(pair: Pair, tmp_path: Path) -> None:
    key = tmp_path / "key0"
    key.write_text("DHHC-1:00:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWbPNFOT:\n")
    other = tmp_path / "key1"
    other.write_text("DHHC-1:00:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTAYBgr/:\n")
    for path in (key, other):
        path.chmod(0o600)
    for sim in (pair.exp, pair.host):
        await sim("keyring_file_add_key", {"name": "key0", "path": str(key)})
        await sim("keyring_file_add_key", {"name": "key1", "path": str(other)})
    await pair.export(any_host=False)
    await pair.exp("nvmf_subsystem_add_host", {"nqn": NQN, "host": HOSTNQN, "dhchap_key": "key0"})
    base = {"name": "nvme0", "subnqn": NQN, "hostnqn": HOSTNQN, **pair.address()}
    assert await pair.host.code("bdev_nvme_attach_controller", base) == -5
    assert await pair.host.code("bdev_nvme_attach_controller", {**base, "dhchap_key": "key1"}) == -5
    assert await pair.host.code("bdev_nvme_attach_controller", {**base, "dhchap_key": "nokey"}) == -126
    assert await pair.host("bdev_nvme_attach_controller", {**base, "dhchap_key": "key0"}) == ["nvme0n1"]


async def test_reset_disable_and_enable(pair: Pair) -> None:
    await pair.export()
    await pair.attach(ctrlr_loss_timeout_sec=10, reconnect_delay_sec=2)
    leg = pair.host.target.get_bdev("nvme0n1")
    assert await pair.host("bdev_nvme_reset_controller", {"name": "nvme0"}) is True
    [ctrlr] = await pair.ctrlrs()
    assert ctrlr["state"] == "enabled" and ctrlr["cntlid"] == 2  # a new controller on the target
    assert await pair.host("bdev_nvme_disable_controller", {"name": "nvme0"}) is True
    assert [c["state"] for c in await pair.ctrlrs()] == ["disabled"]
    assert await pair.exp("nvmf_subsystem_get_controllers", {"nqn": NQN}) == []
    with pytest.raises(RpcError):
        await leg.write(0, b"\x04" * 512)  # a disabled controller fails I/O at once
    assert await pair.host("bdev_nvme_disable_controller", {"name": "nvme0"}) is True
    assert await pair.host("bdev_nvme_enable_controller", {"name": "nvme0", "cntlid": 2}) is True
    assert [c["state"] for c in await pair.ctrlrs()] == ["enabled"]
    await leg.write(0, b"\x04" * 512)
    assert await pair.host.code("bdev_nvme_reset_controller", {"name": "nvme0", "cntlid": 9}) == -19
    assert await pair.host.code("bdev_nvme_reset_controller", {"name": "nope"}) == -19
    assert await pair.host.code("bdev_nvme_reset_controller", {"nm": "nvme0"}) == -32602
    # a reset that cannot reconnect fails, and the controller goes on trying
    await pair.exp("nvmf_subsystem_remove_listener", {"nqn": NQN, "listen_address": pair.address()})
    await until(lambda: _state(pair, "reconnect_is_delayed"))
    assert await pair.host.code("bdev_nvme_reset_controller", {"name": "nvme0"}) == -1
    assert [c["state"] for c in await pair.ctrlrs()] == ["reconnect_is_delayed"]


async def test_rpc_errors(pair: Pair) -> None:
    await pair.export()
    assert await pair.host.code("bdev_nvme_get_controllers", {"name": "nope"}) == -22
    assert await pair.host.code("bdev_nvme_detach_controller", {"name": "nope"}) == -19
    assert await pair.host.code("bdev_nvme_attach_controller", {"name": "x", "trtype": "TCP"}) == -32603
    assert (
        await pair.host.code(
            "bdev_nvme_attach_controller", {"name": "x", "subnqn": NQN, **pair.address(), "adrfam": "ipv9"}
        )
        == -22
    )
    assert (
        await pair.host.code(
            "bdev_nvme_attach_controller", {"name": "x", "subnqn": NQN, **pair.address(), "trtype": "RDMA"}
        )
        == -19
    )
    assert (
        await pair.host.code("bdev_nvme_attach_controller", {"name": "x", "subnqn": NQN + "x", **pair.address()}) == -5
    )
    assert (
        await pair.host.code(
            "bdev_nvme_attach_controller", {"name": "x", "subnqn": NQN, **pair.address(), "max_bdevs": 0}
        )
        == -22
    )
    await pair.attach()
    # the same transport id under another name
    assert await pair.host.code("bdev_nvme_attach_controller", {"name": "y", "subnqn": NQN, **pair.address()}) == -17
    assert await pair.host.code("bdev_nvme_set_options", {"bdev_retry_count": 5}) == -1
    assert (
        await pair.host.code(
            "bdev_nvme_attach_controller", {"name": "nvme0", "subnqn": NQN, **pair.address(), "multipath": "disable"}
        )
        == -114
    )


# ---- probes -----------------------------------------------------------------------------------------
async def _has(sim: Sim, name: str) -> bool:
    return sim.target.find_bdev(name) is not None


async def _gone(sim: Sim, name: str) -> bool:
    return sim.target.find_bdev(name) is None


async def _blocks(sim: Sim, name: str, blocks: int) -> bool:
    bdev = sim.target.find_bdev(name)
    return bdev is not None and bdev.num_blocks == blocks


async def _ana(sim: Sim, state: str) -> bool:
    [info] = await sim("bdev_get_bdevs", {"name": "nvme0n1"})
    return bool(info["driver_specific"]["nvme"][0]["ns_data"]["ana_state"] == state)


async def _state(pair: Pair, state: str) -> bool:
    return [c["state"] for c in await pair.ctrlrs()] == [state]


async def _no_controllers(sim: Sim) -> bool:
    return bool(await sim("bdev_nvme_get_controllers") == [])


async def _active_port(pair: Pair, port: str) -> bool:
    ctrlrs = await pair.ctrlrs()
    return bool(ctrlrs[0]["state"] == "enabled" and ctrlrs[0]["trid"]["trsvcid"] == port)
