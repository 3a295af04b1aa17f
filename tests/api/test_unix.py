"""The UNIX socket listener: SPDK-style framing, permissions, pipelining, stale sockets."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spdkvirt.api import ApiServer, api_socket
from spdkvirt.api.client import ApiClient, ApiUnreachable
from spdkvirt.api.errors import NotFound
from spdkvirt.api.server import Dispatcher
from spdkvirt.api.unix import Framer, FramingError

MiB = 1 << 20


@pytest.fixture
async def server(tmp_path: Path, dispatcher: Dispatcher) -> AsyncIterator[ApiServer]:
    async with ApiServer(dispatcher, unix_path=api_socket(tmp_path)) as srv:
        yield srv


def test_api_socket_convention(tmp_path: Path) -> None:
    assert api_socket(tmp_path) == tmp_path / "api.sock"


async def test_socket_is_private(server: ApiServer) -> None:
    assert server.unix_path is not None
    st = server.unix_path.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()


async def test_client_calls_and_errors(server: ApiServer) -> None:
    async with ApiClient(f"unix://{server.unix_path}") as client:
        vol = await client.call("volume_create", {"name": "v1", "size_bytes": 64 * MiB})
        assert vol["name"] == "v1"
        assert [v["name"] for v in await client.call("volume_list")] == ["v1"]
        with pytest.raises(NotFound) as caught:
            await client.call("volume_get", {"name": "v2"})
        assert caught.value.data == {"kind": "volume", "name": "v2"}
    async with ApiClient(str(server.unix_path)) as bare:
        assert len(await bare.call("node_list")) == 3


async def test_back_to_back_requests_without_newlines(server: ApiServer) -> None:
    reader, writer = await asyncio.open_unix_connection(str(server.unix_path))
    try:
        msgs = b"".join(
            json.dumps({"jsonrpc": "2.0", "id": i, "method": "node_list", "params": {}}).encode() for i in range(3)
        )
        msgs += b'{"jsonrpc": "2.0", "id": 9, "method": "volume_get", "params": {"name": "a{b}\\"c"}}'
        for i in range(0, len(msgs), 7):
            writer.write(msgs[i : i + 7])
            await writer.drain()
        framer = Framer()
        answers: list[bytes] = []
        while len(answers) < 4:
            answers += framer.feed(await asyncio.wait_for(reader.read(65536), 5))
        by_id = {json.loads(a)["id"]: json.loads(a) for a in answers}
        assert set(by_id) == {0, 1, 2, 9}
        assert by_id[9]["error"]["code"] == -32602
    finally:
        writer.close()
        await writer.wait_closed()


async def test_garbage_gets_a_parse_error_and_the_connection_closes(server: ApiServer) -> None:
    reader, writer = await asyncio.open_unix_connection(str(server.unix_path))
    try:
        writer.write(b"hello\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
        assert json.loads(data)["error"]["code"] == -32700
    finally:
        writer.close()
        await writer.wait_closed()


async def test_stale_socket_is_replaced_live_one_refused(tmp_path: Path, dispatcher: Dispatcher) -> None:
    path = api_socket(tmp_path)
    first = ApiServer(dispatcher, unix_path=path)
    await first.start()
    try:
        with pytest.raises(FileExistsError, match="another server"):
            await ApiServer(dispatcher, unix_path=path).start()
    finally:
        for s in first.servers:
            s.close()
            await s.wait_closed()
        await first.connections.close_all()
    assert path.exists()
    async with ApiServer(dispatcher, unix_path=path), ApiClient(str(path)) as client:
        assert len(await client.call("node_list")) == 3
    assert not path.exists()


async def test_client_reports_missing_server(tmp_path: Path) -> None:
    with pytest.raises(ApiUnreachable, match=r"api\.sock"):
        await ApiClient(str(api_socket(tmp_path))).call("node_list")


def test_framer_splits_on_value_boundaries() -> None:
    f = Framer()
    assert f.feed(b' {"a": "}]\\"{"}[1,[2]]') == [b'{"a": "}]\\"{"}', b"[1,[2]]"]
    assert f.feed(b'{"b": "\\') == []
    assert f.pending()
    assert f.feed(b'"x"}') == [b'{"b": "\\"x"}']
    assert not f.pending()


def test_framer_refuses_scalars_size_and_depth() -> None:
    with pytest.raises(FramingError):
        Framer().feed(b"42 ")
    with pytest.raises(FramingError, match="longer"):
        Framer(max_message=10).feed(b'{"a": "' + b"x" * 20)
    with pytest.raises(FramingError, match="deeper"):
        Framer(max_depth=4).feed(b"[[[[[")
