"""rpc.py's client interface over SpdkClient: blocking calls, typed errors, SPDK's own parsers."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from spdk.rpc.client import JSONRPCAbstractClient, JSONRPCException

from spdkvirt.spdk.errors import SpdkConnectError, SpdkNotFound, SpdkTimeout
from spdkvirt.spdk.rpcpy import RpcPyClient, RpcPyError, run_command

from .fakes import FakeServer, err, ok


async def test_is_an_rpcpy_client_and_calls_by_attribute(server: FakeServer) -> None:
    client = RpcPyClient(server.path)
    try:
        assert isinstance(client, JSONRPCAbstractClient)
        out = await asyncio.to_thread(client.bdev_get_bdevs, name="M0", timeout=None)
        assert out == {"method": "bdev_get_bdevs", "params": {"name": "M0"}}
        # no params member when there are none, as rpc.py does
        out = await asyncio.to_thread(client.call, "spdk_get_version", {})
        assert out == {"method": "spdk_get_version", "params": None}
        with pytest.raises(AttributeError):
            client._private  # noqa: B018
    finally:
        await asyncio.to_thread(client.close)
    assert "params" not in server.requests[1]


async def test_errors_are_jsonrpc_exceptions_carrying_the_typed_error(server: FakeServer) -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        return err(req, -19, "No such device")

    server.handler = handler
    client = RpcPyClient(server.path)
    try:
        with pytest.raises(JSONRPCException) as info:
            await asyncio.to_thread(client.bdev_malloc_delete, name="M9")
    finally:
        await asyncio.to_thread(client.close)
    e = info.value
    assert isinstance(e, RpcPyError)
    assert isinstance(e.error, SpdkNotFound)
    assert e.error.params == {"name": "M9"}
    assert '"code": -19' in e.message
    assert "bdev_malloc_delete" in str(e)


async def test_timeout_is_wall_clock_and_settable(server: FakeServer) -> None:
    async def never(req: dict[str, Any]) -> None:
        return None

    server.handler = never
    client = RpcPyClient(server.path, timeout=5.0)
    client.timeout = 0.05
    try:
        with pytest.raises(RpcPyError) as info:
            await asyncio.to_thread(client.call, "hang")
        assert isinstance(info.value.error, SpdkTimeout)
    finally:
        await asyncio.to_thread(client.close)


def test_connect_error(tmp_path: Any) -> None:
    with RpcPyClient(str(tmp_path / "none.sock")) as client, pytest.raises(RpcPyError) as info:
        client.spdk_get_version()
    assert isinstance(info.value.error, SpdkConnectError)
    with pytest.raises(RuntimeError):
        client.call("x")


async def test_thread_safe(server: FakeServer) -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.001)
        return ok(req, req["params"]["n"])

    server.handler = handler
    client = RpcPyClient(server.path)

    def work(base: int) -> list[int]:
        return [client.call("x", {"n": base + i}) for i in range(20)]

    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [asyncio.wrap_future(pool.submit(work, 100 * t)) for t in range(8)]
            results = await asyncio.gather(*futures)
    finally:
        await asyncio.to_thread(client.close)
    assert results == [[100 * t + i for i in range(20)] for t in range(8)]


async def test_rpcpy_parser_runs_over_our_client(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        p = req["params"]
        return ok(req, p.get("name") or p.get("lvs_name"))

    server.handler = handler
    client = RpcPyClient(server.path)
    try:
        await asyncio.to_thread(run_command, client, ["bdev_malloc_create", "-b", "M0", "8", "512"])
        await asyncio.to_thread(run_command, client, ["bdev_lvol_create_lvstore", "M0", "lvs"])
        assert client.timeout == 60.0  # the lvstore parser stretched it for its own call only
    finally:
        await asyncio.to_thread(client.close)
    req = server.requests[0]
    assert req["method"] == "bdev_malloc_create"
    assert req["params"]["name"] == "M0"
    assert req["params"]["num_blocks"] == 8 * 1024 * 1024 // 512
    assert req["params"]["block_size"] == 512
    assert capsys.readouterr().out.split() == ["M0", "lvs"]
