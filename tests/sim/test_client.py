"""The SPDK adapter against a live target: pipelining, typed errors per family, faults, rpc.py.

Runs against spdkvirt-sim always, and against a real spdk_tgt when SPDKVIRT_SPDK_TGT names one
(the sim_* fault tests only against the simulator).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import (
    SpdkConnectionLost,
    SpdkDecodeError,
    SpdkError,
    SpdkExists,
    SpdkInvalid,
    SpdkMethodNotFound,
    SpdkNoSpace,
    SpdkNotFound,
    SpdkRpcError,
    SpdkTimedOut,
    SpdkTimeout,
)
from spdkvirt.spdk.methods import ListenAddress, Lun, Namespace, PgIgMap, Portal, SimFaults, Spdk, target_iqn
from spdkvirt.spdk.rpcpy import RpcPyClient, RpcPyError, run_command
from tests.conftest import spdk_kinds
from tests.support.targets import TargetProcess, make_target

POLL_MS = 4  # real SPDK's RPC poller period


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="spdkvirt-c"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(kind: str, workdir: Path, *extra: str) -> TargetProcess:
    target = make_target(kind, workdir, "a", list(extra) if kind == "sim" else [])
    try:
        target.start()
    except RuntimeError as exc:
        log = Path(target.log_path)
        raise RuntimeError(f"{exc}\n{log.read_text()[-4000:] if log.exists() else ''}") from exc
    return target


@pytest.fixture(params=spdk_kinds())
def target(request: pytest.FixtureRequest, workdir: Path) -> Iterator[TargetProcess]:
    proc = start(request.param, workdir, "--rpc-poll-ms", str(POLL_MS))
    yield proc
    proc.stop()


@pytest.fixture
def sim(workdir: Path) -> Iterator[TargetProcess]:
    proc = start("sim", workdir)
    yield proc
    proc.stop()


@pytest.fixture
async def client(target: TargetProcess) -> AsyncIterator[SpdkClient]:
    async with SpdkClient(target.socket_path, timeout=10.0) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def served(call: Awaitable[Any]) -> Any:
    """Await a call; skip the test when the target does not serve the method (yet)."""
    try:
        return await call
    except SpdkMethodNotFound as exc:
        pytest.skip(f"target does not serve {exc.method}")


# -- pipelining ------------------------------------------------------------------------------------


async def test_twenty_pipelined_calls_share_one_connection(client: SpdkClient) -> None:
    await client.call("bdev_malloc_create", {"name": "M0", "num_blocks": 2048, "block_size": 512})
    req = ("bdev_get_bdevs", {"name": "M0"})
    results = await client.gather([req] * 20)
    concurrent = await asyncio.gather(*(client.call(*req) for _ in range(20)))
    assert all(r[0]["name"] == "M0" for r in results + concurrent)
    assert client.connections_opened == 1


async def gate_server(path: str, count: int) -> asyncio.AbstractServer:
    """A JSON-RPC socket that answers nothing until `count` requests are in, then answers them all.

    A client that waited for one reply before sending the next request would never be answered:
    the test proves pipelining by structure, not by timing (bench/spdk_client.py measures the time).
    """

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder, buf, ids = json.JSONDecoder(), "", []
        while len(ids) < count:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buf += chunk.decode()
            while buf.strip():
                buf = buf.lstrip()
                try:
                    obj, end = decoder.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:]
                ids.append(obj["id"])
        writer.write(b"".join(json.dumps({"jsonrpc": "2.0", "id": i, "result": i}).encode() for i in ids))
        await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(serve, path)


@pytest.mark.parametrize("style", ["gather", "concurrent calls"])
async def test_twenty_calls_are_all_written_before_the_first_reply(workdir: Path, style: str) -> None:
    path = str(workdir / "gate.sock")
    server = await gate_server(path, 20)
    try:
        async with SpdkClient(path, timeout=5.0) as client:
            if style == "gather":
                results = await client.gather([("bdev_get_bdevs", None)] * 20)
            else:
                results = await asyncio.gather(*(client.call("bdev_get_bdevs") for _ in range(20)))
            assert len(set(results)) == 20
            assert client.connections_opened == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_json_array_batch(client: SpdkClient) -> None:
    version, methods = await client.gather(["spdk_get_version", ("rpc_get_methods", None)], as_array=True)
    assert version["version"].startswith("SPDK v")
    assert "bdev_get_bdevs" in methods


async def test_out_of_order_replies(sim: TargetProcess) -> None:
    async with SpdkClient(sim.socket_path) as client:
        faults = SimFaults(client)
        await faults.sim_rpc_delay("spdk_get_version", 200)
        slow = asyncio.ensure_future(client.call("spdk_get_version"))
        await asyncio.sleep(0.01)
        fast = await client.call("bdev_get_bdevs")
        assert fast == []
        assert not slow.done()  # answered after a request sent later
        assert (await slow)["fields"]["major"] == 26
        assert client.connections_opened == 1


# -- typed errors per family -----------------------------------------------------------------------

Setup = Callable[[Spdk], Awaitable[Any]]


async def nothing(spdk: Spdk) -> None:
    return None


async def malloc(spdk: Spdk) -> None:
    await spdk.bdev_malloc_create(2048, 512, name="M0")


async def lvstore(spdk: Spdk) -> None:
    await spdk.bdev_malloc_create(16384, 512, name="M0")  # 8 MiB
    await served(spdk.bdev_lvol_create_lvstore("M0", "lvs", cluster_sz=1024 * 1024))
    await served(spdk.bdev_lvol_create("lv1", 1, lvs_name="lvs"))


async def subsystem(spdk: Spdk) -> None:
    await served(spdk.nvmf_create_subsystem("nqn.2016-06.io.spdk:c1", allow_any_host=True))


FAMILY_CASES: list[tuple[str, Setup, Callable[[Spdk], Awaitable[Any]], type[SpdkRpcError], int]] = [
    ("bdev missing", nothing, lambda s: s.bdev_get_bdevs("nope"), SpdkNotFound, -19),
    ("bdev wait timeout", nothing, lambda s: s.bdev_get_bdevs("nope", timeout=50), SpdkTimedOut, -110),
    ("bdev exists", malloc, lambda s: s.bdev_malloc_create(2048, 512, name="M0"), SpdkExists, -17),
    ("bdev decode", nothing, lambda s: s.rpc.call("bdev_get_bdevs", {"nmae": "x"}), SpdkDecodeError, -32603),
    ("bdev delete missing", nothing, lambda s: s.bdev_malloc_delete("nope"), SpdkNotFound, -19),
    ("raid decode", nothing, lambda s: s.rpc.call("bdev_raid_get_bdevs", {"category": "x"}), SpdkDecodeError, -32700),
    ("raid missing", nothing, lambda s: s.bdev_raid_delete("nope"), SpdkNotFound, -19),
    ("lvol no space", lvstore, lambda s: s.bdev_lvol_create("big", 64, lvs_name="lvs"), SpdkNoSpace, -32602),
    ("lvol exists", lvstore, lambda s: s.bdev_lvol_create("lv1", 1, lvs_name="lvs"), SpdkExists, -17),
    ("lvol missing", nothing, lambda s: s.bdev_lvol_delete("nope"), SpdkNotFound, -19),
    ("nvmf missing", nothing, lambda s: s.nvmf_get_subsystems("nqn.2016-06.io.spdk:none"), SpdkNotFound, -19),
    (
        "nvmf invalid",
        subsystem,
        lambda s: s.nvmf_subsystem_add_ns("nqn.2016-06.io.spdk:c1", Namespace("nope")),
        SpdkInvalid,
        -32602,
    ),
    ("iscsi missing node", nothing, lambda s: s.iscsi_delete_target_node(target_iqn("nope")), SpdkNotFound, -2),
    ("iscsi invalid", nothing, lambda s: s.iscsi_delete_portal_group(9), SpdkInvalid, -32602),
    ("no such method", nothing, lambda s: s.rpc.call("no_such_method"), SpdkMethodNotFound, -32601),
    ("params on a no-param method", nothing, lambda s: s.rpc.call("spdk_get_version", {}), SpdkInvalid, -32602),
    ("notify negative id", nothing, lambda s: s.notify_get_notifications(id=-1), SpdkInvalid, -32602),
]


@pytest.mark.parametrize(
    ("setup", "failing", "kind", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in FAMILY_CASES],
)
async def test_error_classes_per_family(
    client: SpdkClient,
    setup: Setup,
    failing: Callable[[Spdk], Awaitable[Any]],
    kind: type[SpdkRpcError],
    code: int,
) -> None:
    spdk = Spdk(client)
    await setup(spdk)
    with pytest.raises(SpdkError) as info:
        await (failing(spdk) if kind is SpdkMethodNotFound else served(failing(spdk)))
    e = info.value
    assert isinstance(e, SpdkRpcError), e
    assert e.code == code, e
    assert type(e) is kind, e
    assert e.method


# -- typed wrappers end to end ---------------------------------------------------------------------


async def test_export_flow_with_typed_wrappers(client: SpdkClient) -> None:
    spdk = Spdk(client)
    assert await spdk.bdev_malloc_create(16384, 512, name="M0") == "M0"
    assert await spdk.bdev_malloc_create(16384, 512, name="M1") == "M1"
    assert await served(spdk.bdev_raid_create("r1", "raid1", ["M0", "M1"], superblock=True))
    [raid] = await spdk.bdev_raid_get_bdevs("online")
    assert raid["name"] == "r1"
    lvs = await served(spdk.bdev_lvol_create_lvstore("r1", "lvs", cluster_sz=1024 * 1024))
    lvol = await spdk.bdev_lvol_create("vol1", 2, uuid=lvs, thin_provision=True)
    [bdev] = await spdk.bdev_get_bdevs(lvol)
    assert bdev["aliases"] == ["lvs/vol1"]
    nqn = "nqn.2016-06.io.spdk:vol1"
    await served(spdk.nvmf_create_transport("TCP"))
    assert await spdk.nvmf_create_subsystem(nqn, serial_number="SPDKVIRT0001", ana_reporting=True)
    assert await spdk.nvmf_subsystem_add_ns(nqn, Namespace(lvol, uuid=lvol)) == 1
    addr = ListenAddress("TCP", "127.0.0.1", str(free_port()), "IPv4")
    assert await spdk.nvmf_subsystem_add_listener(nqn, addr)
    [listener] = await spdk.nvmf_subsystem_get_listeners(nqn)
    assert listener["address"]["trsvcid"] == addr.trsvcid
    assert await spdk.nvmf_subsystem_listener_set_ana_state(nqn, addr, "inaccessible")
    assert await spdk.nvmf_subsystem_remove_listener(nqn, addr)
    assert await spdk.nvmf_delete_subsystem(nqn)
    assert await spdk.bdev_lvol_delete(lvol)
    assert await spdk.bdev_lvol_delete_lvstore(lvs_name="lvs")
    assert await spdk.bdev_raid_delete("r1")
    events = await spdk.notify_get_notifications(id=0)
    assert {"bdev_register", "bdev_unregister"} <= {e["type"] for e in events}


async def test_iscsi_flow_with_typed_wrappers(client: SpdkClient) -> None:
    spdk = Spdk(client)
    await spdk.bdev_malloc_create(2048, 512, name="M0")
    await served(spdk.iscsi_create_portal_group(1, [Portal("127.0.0.1", "3260")]))
    await spdk.iscsi_create_initiator_group(2, ["ANY"], ["127.0.0.1/32"])
    await spdk.iscsi_create_target_node("disk1", "d1", [Lun("M0", 0)], [PgIgMap(1, 2)], 32, disable_chap=True)
    [node] = await spdk.iscsi_get_target_nodes()
    assert node["name"] == target_iqn("disk1")
    assert await spdk.iscsi_delete_target_node(target_iqn("disk1"))


# -- faults: timeouts and dropped connections ------------------------------------------------------


async def test_timeout_then_fresh_connection(sim: TargetProcess) -> None:
    async with SpdkClient(sim.socket_path, timeout=5.0) as client:
        await SimFaults(client).sim_rpc_delay("spdk_get_version", 300)
        with pytest.raises(SpdkTimeout):
            await client.call("spdk_get_version", timeout=0.05)
        assert await client.call("bdev_get_bdevs") == []
        assert client.connections_opened == 2


async def test_dropped_connection_then_reconnect(sim: TargetProcess) -> None:
    async with SpdkClient(sim.socket_path) as client:
        faults = SimFaults(client)
        await faults.sim_rpc_delay("bdev_wait_for_examine", 500)
        pending = asyncio.ensure_future(client.call("bdev_wait_for_examine"))
        await asyncio.sleep(0.02)
        with pytest.raises(SpdkConnectionLost):
            await faults.sim_drop_connections()
        with pytest.raises(SpdkConnectionLost):
            await pending
        assert await client.call("bdev_get_bdevs") == []
        assert client.connections_opened == 2


async def test_injected_error_keeps_code(sim: TargetProcess) -> None:
    async with SpdkClient(sim.socket_path) as client:
        spdk = Spdk(client)
        await SimFaults(client).sim_rpc_error("bdev_malloc_create", -16)
        with pytest.raises(SpdkRpcError) as info:
            await spdk.bdev_malloc_create(2048, 512, name="M0")
        assert info.value.code == -16
        assert info.value.params == {"name": "M0", "num_blocks": 2048, "block_size": 512}
        assert await spdk.bdev_malloc_create(2048, 512, name="M0") == "M0"


# -- rpc.py's parsers over our transport -----------------------------------------------------------


def test_rpcpy_parser_over_the_target(target: TargetProcess, capsys: pytest.CaptureFixture[str]) -> None:
    with RpcPyClient(target.socket_path) as client:
        run_command(
            client, ["bdev_malloc_create", "-b", "M0", "-u", "0b6b7a4e-0f1e-4c7e-8a6e-1d2c3b4a5f01", "8", "512"]
        )
        assert capsys.readouterr().out.strip() == "M0"
        [bdev] = client.bdev_get_bdevs(name="M0")
        assert bdev["num_blocks"] == 16384
        assert bdev["uuid"] == "0b6b7a4e-0f1e-4c7e-8a6e-1d2c3b4a5f01"
        with pytest.raises(RpcPyError) as info:
            run_command(client, ["bdev_malloc_create", "-b", "M0", "8", "512"])
        assert isinstance(info.value.error, SpdkExists)
        run_command(client, ["bdev_malloc_delete", "M0"])
        assert client.bdev_get_bdevs() == []
