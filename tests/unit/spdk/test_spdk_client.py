"""SpdkClient against a scripted fake server: ids, ordering, deadlines, reconnects, errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from spdkvirt.spdk.client import JsonStream, Request, SpdkClient
from spdkvirt.spdk.errors import (
    SpdkConnectError,
    SpdkConnectionLost,
    SpdkExists,
    SpdkNotFound,
    SpdkProtocolError,
    SpdkRpcError,
    SpdkTimeout,
)

from .fakes import FakeServer, err, ok


async def test_call_returns_result_and_sends_jsonrpc_2(server: FakeServer) -> None:
    async with SpdkClient(server.path) as client:
        assert await client.call("bdev_get_bdevs", {"name": "M0"}) == {
            "method": "bdev_get_bdevs",
            "params": {"name": "M0"},
        }
    [req] = server.requests
    assert req["jsonrpc"] == "2.0"
    assert isinstance(req["id"], int)


async def test_no_params_member_when_params_is_none(server: FakeServer) -> None:
    async with SpdkClient(server.path) as client:
        await client.call("spdk_get_version")
        await client.call("bdev_get_bdevs", {})
    assert "params" not in server.requests[0]
    assert server.requests[1]["params"] == {}


async def test_replies_matched_by_id_when_out_of_order(server: FakeServer) -> None:
    async def slow_first(req: dict[str, Any]) -> dict[str, Any]:
        # the earlier a request, the later its reply
        await asyncio.sleep(0.002 * (20 - req["params"]["n"]))
        return ok(req, req["params"]["n"])

    server.handler = slow_first
    async with SpdkClient(server.path) as client:
        results = await asyncio.gather(*(client.call("x", {"n": n}) for n in range(20)))
        assert results == list(range(20))
        assert client.connections_opened == 1


async def test_ids_are_unique_and_increasing(server: FakeServer) -> None:
    async with SpdkClient(server.path) as client:
        for _ in range(5):
            await client.call("x")
    ids = [r["id"] for r in server.requests]
    assert ids == sorted(set(ids))


async def test_gather_writes_all_requests_at_once(server: FakeServer) -> None:
    async with SpdkClient(server.path) as client:
        await client.call("warm_up")
        before = len(server.raw_requests)
        results = await client.gather([("a", {"i": 1}), Request("b"), "c"])
    assert [r["method"] for r in results] == ["a", "b", "c"]
    assert len(server.raw_requests) - before == 1  # one write, one read on the server


async def test_gather_as_json_array(server: FakeServer) -> None:
    async with SpdkClient(server.path) as client:
        results = await client.gather([("a", None), ("b", {"k": 1})], as_array=True)
    assert [r["method"] for r in results] == ["a", "b"]


async def test_gather_raises_first_error_or_returns_them(server: FakeServer) -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        if req["method"] == "bad":
            return err(req, -19, "No such device")
        return ok(req, True)

    server.handler = handler
    async with SpdkClient(server.path) as client:
        with pytest.raises(SpdkNotFound):
            await client.gather(["good", "bad", "good"])
        out = await client.gather(["good", "bad"], return_exceptions=True)
        assert out[0] is True
        assert isinstance(out[1], SpdkNotFound)
        assert await client.gather([]) == []


async def test_batch_context(server: FakeServer) -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        if req["method"] == "bad":
            return err(req, -17, "File exists")
        return ok(req, req["method"])

    server.handler = handler
    async with SpdkClient(server.path) as client:
        async with client.batch() as b:
            first = b.call("one")
            second = b.call("two", {"x": 1})
            assert not first.done
            with pytest.raises(RuntimeError):
                first.result()
        assert (first.result(), second.result()) == ("one", "two")

        with pytest.raises(SpdkExists):
            async with client.batch() as b:
                b.call("one")
                b.call("bad")

        async with client.batch(return_exceptions=True) as b:
            good = b.call("one")
            bad = b.call("bad")
        assert good.result() == "one"
        assert isinstance(bad.error, SpdkExists)


async def test_error_reply_is_typed_and_keeps_everything(server: FakeServer) -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        return err(req, -17, "File exists", data={"detail": 1})

    server.handler = handler
    params = {"name": "M0", "nested": {"a": [1]}}
    async with SpdkClient(server.path) as client:
        with pytest.raises(SpdkExists) as info:
            await client.call("bdev_malloc_create", params)
    e = info.value
    assert (e.code, e.message, e.data, e.method) == (-17, "File exists", {"detail": 1}, "bdev_malloc_create")
    assert e.params == params
    assert e.params is not params
    e.params["nested"]["a"].append(2)
    assert params == {"name": "M0", "nested": {"a": [1]}}  # a copy, and the caller's dict untouched


async def test_unknown_code_stays_a_plain_rpc_error(server: FakeServer) -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        return err(req, -32603, "Unable to create subsystem")

    server.handler = handler
    async with SpdkClient(server.path) as client:
        with pytest.raises(SpdkRpcError) as info:
            await client.call("nvmf_create_subsystem", {"nqn": "x"})
    assert type(info.value) is SpdkRpcError


async def test_timeout_is_wall_clock_and_outcome_unknown(server: FakeServer) -> None:
    async def never(req: dict[str, Any]) -> None:
        return None

    server.handler = never
    loop = asyncio.get_running_loop()
    async with SpdkClient(server.path, timeout=0.1) as client:
        start = loop.time()
        with pytest.raises(SpdkTimeout) as info:
            await client.call("bdev_wait_for_examine")
        assert 0.09 <= loop.time() - start < 1.0
        assert info.value.method == "bdev_wait_for_examine"
    async with SpdkClient(server.path, timeout=5.0) as client:
        start = loop.time()
        with pytest.raises(SpdkTimeout):
            await client.call("x", timeout=0.03)
        assert loop.time() - start < 2.5  # the call's own deadline, not the client's 5 s


async def test_reconnects_after_timeout_and_ignores_late_reply(server: FakeServer) -> None:
    async def late(req: dict[str, Any]) -> dict[str, Any]:
        if req["method"] == "slow":
            await asyncio.sleep(0.15)
        return ok(req, req["method"])

    server.handler = late
    async with SpdkClient(server.path, timeout=0.05) as client:
        with pytest.raises(SpdkTimeout):
            await client.call("slow")
        assert client.connections_opened == 1
        assert await client.call("fast") == "fast"
        assert client.connections_opened == 2  # the next call used a fresh connection
        await asyncio.sleep(0.2)  # the late reply arrives on the old connection (or its corpse)
        assert await client.call("fast") == "fast"
        assert server.connections == 2


async def test_calls_in_flight_on_a_retired_connection_still_complete(server: FakeServer) -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any] | None:
        if req["method"] == "hang":
            return None
        await asyncio.sleep(0.1)
        return ok(req, "done")

    server.handler = handler
    async with SpdkClient(server.path, timeout=1.0) as client:
        waiting = asyncio.ensure_future(client.call("slow"))
        await asyncio.sleep(0.01)
        with pytest.raises(SpdkTimeout):
            await client.call("hang", timeout=0.02)
        assert await waiting == "done"


async def test_dropped_connection_fails_in_flight_calls_then_reconnects(server: FakeServer) -> None:
    async def hang(req: dict[str, Any]) -> dict[str, Any] | None:
        if req["method"] == "hang":
            return None
        return ok(req, True)

    server.handler = hang
    async with SpdkClient(server.path) as client:
        calls = [asyncio.ensure_future(client.call("hang", {"i": i})) for i in range(3)]
        await asyncio.sleep(0.02)
        server.drop()
        for call in calls:
            with pytest.raises(SpdkConnectionLost) as info:
                await call
            assert type(info.value) is SpdkConnectionLost
            assert info.value.method == "hang"
        assert not client.connected
        assert await client.call("again") is True
        assert client.connections_opened == 2


async def test_connect_error_means_never_sent(tmp_path: Any) -> None:
    client = SpdkClient(str(tmp_path / "nothing.sock"))
    with pytest.raises(SpdkConnectError) as info:
        await client.call("spdk_get_version")
    assert info.value.method == "spdk_get_version"
    await client.close()


async def test_garbage_reply_is_a_protocol_error(server: FakeServer) -> None:
    async def garbage(req: dict[str, Any]) -> None:
        server.raw(b"this is not json")
        return

    server.handler = garbage
    async with SpdkClient(server.path) as client:
        with pytest.raises(SpdkProtocolError):
            await client.call("x")
        server.handler = lambda req: _ok_async(req, 1)
        assert await client.call("y") == 1


async def _ok_async(req: dict[str, Any], value: Any) -> dict[str, Any]:
    return ok(req, value)


async def test_reply_without_result_or_error(server: FakeServer) -> None:
    async def empty(req: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": req["id"]}

    server.handler = empty
    async with SpdkClient(server.path) as client:
        with pytest.raises(SpdkProtocolError):
            await client.call("x")


async def test_reply_with_unknown_or_null_id_is_ignored(server: FakeServer) -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        server.raw(json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "x"}}).encode())
        server.raw(json.dumps({"jsonrpc": "2.0", "id": 999999, "result": "stray"}).encode())
        server.raw(json.dumps({"jsonrpc": "2.0", "id": True, "result": "bool id"}).encode())
        return ok(req, "mine")

    server.handler = handler
    async with SpdkClient(server.path) as client:
        assert await client.call("x") == "mine"


async def test_cancelled_call_leaves_the_connection_usable(server: FakeServer) -> None:
    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        if req["method"] == "slow":
            await asyncio.sleep(0.1)
        return ok(req, req["method"])

    server.handler = handler
    async with SpdkClient(server.path) as client:
        task = asyncio.ensure_future(client.call("slow"))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await client.call("fast") == "fast"
        assert client.connections_opened == 1


async def test_close_fails_calls_in_flight(server: FakeServer) -> None:
    async def never(req: dict[str, Any]) -> None:
        return None

    server.handler = never
    client = SpdkClient(server.path)
    task = asyncio.ensure_future(client.call("hang"))
    await asyncio.sleep(0.02)
    await client.close()
    with pytest.raises(SpdkConnectionLost):
        await task
    with pytest.raises(RuntimeError):
        await client.call("x")


async def test_concurrent_first_calls_share_one_connection(server: FakeServer) -> None:
    async with SpdkClient(server.path) as client:
        await asyncio.gather(*(client.call("x") for _ in range(10)))
        assert client.connections_opened == 1


async def test_tcp_transport(server: FakeServer) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = JsonStream()
        while chunk := await reader.read(65536):
            for req in stream.feed(chunk):
                writer.write(json.dumps(ok(req, "tcp")).encode())
        writer.close()

    tcp = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    async with SpdkClient(f"tcp://127.0.0.1:{port}") as client:
        assert await client.gather(["a", "b"]) == ["tcp", "tcp"]
    tcp.close()
    await tcp.wait_closed()


async def test_large_reply_in_pieces(server: FakeServer) -> None:
    big = [{"name": f"bdev{i}", "blob": 'x\\"{}[]' * 50} for i in range(2000)]

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        return ok(req, big)

    server.handler = handler
    async with SpdkClient(server.path) as client:
        assert await client.call("bdev_get_bdevs") == big


# -- framing ---------------------------------------------------------------------------------------


def test_json_stream_splits_values_across_chunks() -> None:
    data = b' {"a": "b}\\"c", "n": [1, {"x": 2}]}\n[{"id": 1}, {"id": 2}]{"s":"\xc3\xa9"}'
    for size in (1, 2, 3, 7, len(data)):
        stream = JsonStream()
        out: list[Any] = []
        for i in range(0, len(data), size):
            out += stream.feed(data[i : i + size])
        assert out == [{"a": 'b}"c', "n": [1, {"x": 2}]}, [{"id": 1}, {"id": 2}], {"s": "é"}]


@pytest.mark.parametrize("data", [b"garbage", b"12", b'"str"', b"{]"])
def test_json_stream_rejects_non_objects(data: bytes) -> None:
    with pytest.raises(SpdkProtocolError):
        JsonStream().feed(data)


def test_json_stream_limits_size() -> None:
    stream = JsonStream(max_size=100)
    with pytest.raises(SpdkProtocolError):
        stream.feed(b'{"a": "' + b"x" * 200)


def test_json_stream_value_ending_in_a_brace_before_it_is_complete() -> None:
    stream = JsonStream()
    assert stream.feed(b'{"a": {"b": 1}') == []
    assert stream.feed(b"}  ") == [{"a": {"b": 1}}]
    assert stream.feed(b'{"x": 1}{"y": 2}\n') == [{"x": 1}, {"y": 2}]
