"""JSON-RPC 2.0 dispatch: requests, batches, notifications and every error code."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from spdkvirt.api import errors
from spdkvirt.api.server import MAX_PARAMS_DEPTH, Dispatcher
from spdkvirt.store.errors import StoreUnavailable
from tests.api.conftest import request, wire
from tests.api.fake import FakeService

MiB = 1 << 20
VOL = {"name": "v1", "size_bytes": 64 * MiB}


async def test_single_request_gets_defaults_and_no_key(dispatcher: Dispatcher, fake: FakeService) -> None:
    out = await wire(dispatcher, request("volume_create", {**VOL, "idempotency_key": "k1"}, rid="a"))
    assert out["jsonrpc"] == "2.0" and out["id"] == "a"
    assert out["result"]["name"] == "v1" and len(out["result"]["legs"]) == 2
    assert fake.calls == [("volume_create", {**VOL, "redundancy": 2, "thin": True})]


async def test_params_may_be_omitted_for_methods_without_required_fields(dispatcher: Dispatcher) -> None:
    out = await wire(dispatcher, request("volume_list"))
    assert out == {"jsonrpc": "2.0", "id": 1, "result": []}


async def test_batch_answers_every_request_but_no_notification(dispatcher: Dispatcher, fake: FakeService) -> None:
    batch = [
        request("volume_create", VOL, rid=1),
        request("volume_get", {"name": "nope"}, rid=2),
        request("volume_list", {}, rid=None),
        request("no_such_method", {}, rid=3),
        {"jsonrpc": "2.0", "id": 4},
    ]
    out = await wire(dispatcher, batch)
    assert [a["id"] for a in out] == [1, 2, 3, 4]
    assert "result" in out[0]
    assert out[1]["error"]["code"] == errors.NotFound.CODE
    assert out[2]["error"]["code"] == -32601
    assert out[3]["error"]["code"] == -32600
    assert ("volume_list", {}) in fake.calls


async def test_empty_batch_is_one_invalid_request(dispatcher: Dispatcher) -> None:
    out = await wire(dispatcher, [])
    assert isinstance(out, dict)
    assert out["error"]["code"] == -32600 and out["id"] is None


async def test_batch_of_non_requests_gets_one_error_each(dispatcher: Dispatcher) -> None:
    out = await wire(dispatcher, [1, 2, 3])
    assert [a["error"]["code"] for a in out] == [-32600] * 3


async def test_notifications_run_but_get_no_answer(dispatcher: Dispatcher, fake: FakeService) -> None:
    assert await wire(dispatcher, request("volume_create", VOL, rid=None)) is None
    assert "v1" in fake.volumes
    assert await wire(dispatcher, [request("volume_list", rid=None), request("node_list", rid=None)]) is None
    assert [c[0] for c in fake.calls] == ["volume_create", "volume_list", "node_list"]


async def test_notification_with_bad_params_or_method_is_silent_and_does_nothing(
    dispatcher: Dispatcher, fake: FakeService
) -> None:
    assert await wire(dispatcher, request("volume_create", {"name": "X"}, rid=None)) is None
    assert await wire(dispatcher, request("nope", {}, rid=None)) is None
    assert fake.calls == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"not json",
        b'{"jsonrpc": "2.0", "method": "volume_list", "id": NaN}',
        b'{"jsonrpc": "2.0", "method": "volume_list", "method": "node_list", "id": 1}',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"id": ' + b"9" * 5000 + b"}",
    ],
    ids=["truncated", "garbage", "nan", "duplicate-member", "not-utf8", "deep", "huge-int"],
)
async def test_parse_error(dispatcher: Dispatcher, raw: bytes) -> None:
    out = await wire(dispatcher, raw)
    assert out["error"]["code"] == -32700 and out["id"] is None
    assert out["error"]["data"]["reason"]


@pytest.mark.parametrize(
    ("message", "rid"),
    [
        ("just a string", None),
        ({"method": "volume_list", "id": 1}, 1),
        ({"jsonrpc": "1.0", "method": "volume_list", "id": 1}, 1),
        ({"jsonrpc": "2.0", "method": 7, "id": 1}, 1),
        ({"jsonrpc": "2.0", "method": "volume_list", "id": 1.5}, None),
        ({"jsonrpc": "2.0", "method": "volume_list", "id": True}, None),
        ({"jsonrpc": "2.0", "method": "volume_list", "id": {"a": 1}}, None),
        ({"jsonrpc": "2.0", "method": "volume_list", "id": 1, "extra": 1}, 1),
    ],
)
async def test_invalid_request(dispatcher: Dispatcher, fake: FakeService, message: Any, rid: Any) -> None:
    out = await wire(dispatcher, message)
    assert out["error"]["code"] == -32600
    assert out["id"] == rid
    assert fake.calls == []


async def test_method_not_found(dispatcher: Dispatcher) -> None:
    for name in ("volume_destroy", "rpc.discover", "x" * 10_000):
        out = await wire(dispatcher, request(name, {}))
        assert out["error"]["code"] == -32601
        assert len(out["error"]["message"]) < 200


@pytest.mark.parametrize(
    ("method", "params", "path"),
    [
        ("volume_create", [1, 2], "$"),
        ("volume_create", "x", "$"),
        ("volume_list", 7, "$"),
        ("volume_create", {"size_bytes": 64 * MiB}, "$.name"),
        ("volume_create", {**VOL, "name": "Upper"}, "$.name"),
        ("volume_create", {**VOL, "name": "a/b"}, "$.name"),
        ("volume_create", {**VOL, "name": "v1\n"}, "$.name"),
        ("volume_create", {**VOL, "name": "v" * 64}, "$.name"),
        ("volume_create", {**VOL, "size_bytes": 64 * MiB + 1}, "$.size_bytes"),
        ("volume_create", {**VOL, "size_bytes": 4096}, "$.size_bytes"),
        ("volume_create", {**VOL, "size_bytes": 2**60}, "$.size_bytes"),
        ("volume_create", {**VOL, "size_bytes": float(64 * MiB)}, "$.size_bytes"),
        ("volume_create", {**VOL, "size_bytes": True}, "$.size_bytes"),
        ("volume_create", {**VOL, "redundancy": 4}, "$.redundancy"),
        ("volume_create", {**VOL, "colour": "red"}, "$.colour"),
        ("volume_create", {**VOL, "placement": {"nodes": ["n1", "n1"]}}, "$.placement.nodes"),
        ("volume_create", {**VOL, "placement": {"nodes": ["n1", "a/b"]}}, "$.placement.nodes[1]"),
        ("volume_create", {**VOL, "idempotency_key": ""}, "$.idempotency_key"),
        ("export_create", {"volume": "v1", "protocol": "iscsi", "hosts": []}, "$.hosts"),
        ("export_create", {"volume": "v1", "protocol": "nvmf", "chap": {"user": "u", "secret": "s" * 12}}, "$.chap"),
        ("export_create", {"volume": "v1", "protocol": "iscsi", "initiators": ["iqn.2016-06.IO.x"]}, "$.initiators[0]"),
        ("export_create", {"volume": "v1", "protocol": "nvmf", "hosts": ["nqn.2014-08.org.x:\x00"]}, "$.hosts[0]"),
        (
            "export_create",
            {"volume": "v1", "protocol": "iscsi", "chap": {"user": "u", "secret": "short"}},
            "$.chap.secret",
        ),
        ("export_create", {"volume": "v1", "protocol": "smb"}, "$.protocol"),
        ("device_set_state", {"node": "n1", "device_id": "d0", "state": "failed"}, "$.state"),
        ("epoch_list", {"limit": 0}, "$.limit"),
        ("volume_get", {"name": "v\ud800"}, "$.name"),
    ],
)
async def test_invalid_params_name_the_field(
    dispatcher: Dispatcher, fake: FakeService, method: str, params: Any, path: str
) -> None:
    out = await dispatcher.handle(request(method, params))
    err = out["error"]
    assert err["code"] == -32602, err
    assert err["data"]["path"] == path, err
    assert err["data"]["reason"] and err["message"].startswith("invalid params")
    assert fake.calls == []


async def test_null_params_are_invalid_params(dispatcher: Dispatcher) -> None:
    out = await dispatcher.handle({"jsonrpc": "2.0", "method": "volume_list", "params": None, "id": 1})
    assert out["error"]["code"] == -32602 and out["error"]["data"]["path"] == "$"


async def test_deep_params_are_invalid_params_with_a_path(dispatcher: Dispatcher, fake: FakeService) -> None:
    deep: Any = "x"
    for _ in range(MAX_PARAMS_DEPTH + 5):
        deep = [deep]
    out = await dispatcher.handle(request("volume_create", {**VOL, "placement": {"nodes": deep}}))
    assert out["error"]["code"] == -32602
    assert out["error"]["data"]["path"].startswith("$.placement.nodes[0][0]")
    assert fake.calls == []


async def test_hostile_field_names_are_quoted_and_cut_in_the_path(dispatcher: Dispatcher) -> None:
    out = await dispatcher.handle(request("volume_create", {**VOL, "../" + "z" * 1000: 1}))
    path = out["error"]["data"]["path"]
    assert path.startswith("$['../zzz") and len(path) < 100


async def test_same_input_same_error(dispatcher: Dispatcher) -> None:
    bad = {"name": 5, "size_bytes": "big", "redundancy": 9, "extra": 1}
    answers = {str((await dispatcher.handle(request("volume_create", bad)))["error"]) for _ in range(5)}
    assert len(answers) == 1


@pytest.mark.parametrize(
    "exc",
    [
        errors.NotFound.of("volume", "v1"),
        errors.AlreadyExists.of("volume", "v1"),
        errors.InvalidState("volume 'v1' has exports", {"kind": "volume", "name": "v1"}),
        errors.InsufficientCapacity("need 3 nodes, have 2", {"needed": 3, "available": 2}),
        errors.Refused.at("$.size_bytes", "cannot shrink"),
        errors.Busy("volume v1 is changing", {"kind": "volume", "name": "v1"}),
        errors.Unavailable("no leader", {"reason": "no leader"}),
        errors.NotLeader("not the leader", {"leader": "n2"}),
        errors.OutcomeUnknown("timed out", {"reason": "timeout"}),
        errors.ServiceFailed("SPDK said no", {"reason": "EBUSY"}),
    ],
)
async def test_service_errors_keep_their_code_message_and_data(
    dispatcher: Dispatcher, fake: FakeService, exc: errors.ApiError
) -> None:
    fake.fail_with = exc
    out = await dispatcher.handle(request("volume_create", VOL))
    assert out["error"] == {"code": exc.code, "message": exc.message, "data": exc.data}
    assert exc.code in errors.SERVER_ERROR_RANGE


async def test_lower_layer_errors_are_mapped(dispatcher: Dispatcher, fake: FakeService) -> None:
    fake.fail_with = StoreUnavailable("etcd is down")
    out = await dispatcher.handle(request("volume_list", {}))
    assert out["error"]["code"] == errors.Unavailable.CODE
    fake.fail_with = TimeoutError()
    out = await dispatcher.handle(request("volume_list", {}))
    assert out["error"]["code"] == errors.OutcomeUnknown.CODE


async def test_a_bug_is_logged_and_answered_without_its_traceback(
    dispatcher: Dispatcher, fake: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_with = KeyError("secret internals")
    with caplog.at_level(logging.ERROR, logger="spdkvirt.api"):
        out = await wire(dispatcher, request("volume_create", VOL))
    err = out["error"]
    assert err["code"] == -32603
    assert set(err["data"]) == {"incident"}
    assert "secret" not in str(out) and "Traceback" not in str(out)
    assert any(err["data"]["incident"] in r.getMessage() and r.exc_info for r in caplog.records)


async def test_debug_mode_checks_results(
    dispatcher: Dispatcher, fake: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    fake.result_override = {"name": "v1"}
    with caplog.at_level(logging.ERROR, logger="spdkvirt.api"):
        out = await dispatcher.handle(request("volume_create", VOL))
    assert out["error"]["code"] == -32603
    assert any("$.uuid" in r.getMessage() for r in caplog.records)


async def test_without_debug_results_pass_unchecked(fake: FakeService) -> None:
    fake.result_override = {"name": "v1"}
    out = await Dispatcher(fake, fake).handle(request("volume_create", VOL))
    assert out["result"] == {"name": "v1"}


async def test_idempotency_key_replays_the_first_result(dispatcher: Dispatcher, fake: FakeService) -> None:
    first = await dispatcher.handle(request("volume_create", {**VOL, "idempotency_key": "k"}))
    again = await dispatcher.handle(request("volume_create", {**VOL, "redundancy": 2, "idempotency_key": "k"}))
    assert again["result"] == first["result"]
    assert len(fake.calls) == 1


async def test_idempotency_key_with_other_params_conflicts(dispatcher: Dispatcher, fake: FakeService) -> None:
    await dispatcher.handle(request("volume_create", {**VOL, "idempotency_key": "k"}))
    other = await dispatcher.handle(request("volume_create", {**VOL, "redundancy": 3, "idempotency_key": "k"}))
    assert other["error"]["code"] == errors.IdempotencyConflict.CODE
    assert other["error"]["data"]["path"] == "$.idempotency_key"
    other_method = await dispatcher.handle(request("volume_delete", {"name": "v1", "idempotency_key": "k"}))
    assert other_method["error"]["code"] == errors.IdempotencyConflict.CODE
    assert len(fake.calls) == 1


async def test_failed_call_is_not_remembered(dispatcher: Dispatcher, fake: FakeService) -> None:
    fake.fail_with = errors.Unavailable("no leader", {"reason": "no leader"})
    first = await dispatcher.handle(request("volume_create", {**VOL, "idempotency_key": "k"}))
    assert first["error"]["code"] == errors.Unavailable.CODE
    fake.fail_with = None
    second = await dispatcher.handle(request("volume_create", {**VOL, "idempotency_key": "k"}))
    assert second["result"]["name"] == "v1"


async def test_concurrent_calls_with_one_key_run_once(dispatcher: Dispatcher, fake: FakeService) -> None:
    batch = [request("volume_create", {**VOL, "idempotency_key": "k"}, rid=i) for i in range(5)]
    out = await dispatcher.handle(batch)
    assert all("result" in a for a in out)
    assert len({a["result"]["uuid"] for a in out}) == 1
    assert len(fake.calls) == 1


def test_error_codes_are_unique_and_in_range() -> None:
    service = [c for c in errors.BY_CODE.values() if c.CODE not in (-32700, -32600, -32601, -32602, -32603)]
    assert len(errors.BY_CODE) == 16
    assert all(c.CODE in errors.SERVER_ERROR_RANGE for c in service)
    for code, cls in errors.BY_CODE.items():
        back = errors.from_wire(code, "m", {"x": 1})
        assert type(back) is cls and back.code == code and back.data == {"x": 1}
    assert type(errors.from_wire(-32050, "m", None)) is errors.ApiError
