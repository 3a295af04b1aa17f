"""Typed wrappers send SPDK's exact method and parameter names and check what comes back.

Every request recorded from a real SPDK in tests/data/spdk-reference is replayed through the
wrapper of the same name (params passed as keywords) against a recording caller that answers
with the recorded reply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.spdk.errors import SpdkResultError, SpdkRpcError, rpc_error
from spdkvirt.spdk.methods import (
    AuthSecret,
    ListenAddress,
    Lun,
    Namespace,
    PgIgMap,
    Portal,
    SimFaults,
    Spdk,
    target_iqn,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "spdk-reference"


class Recorder:
    """An RpcCaller that records calls and answers with a canned result."""

    def __init__(self, result: Any = True, timeout: float | None = 60.0, error: Any = None) -> None:
        self.timeout = timeout
        self.result = result
        self.error = error
        self.calls: list[tuple[str, Mapping[str, Any] | None, float | None]] = []

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the RpcCaller interface
    ) -> Any:
        self.calls.append((method, params, timeout))
        if self.error is not None:
            raise rpc_error(method, params, self.error)
        return self.result


def recorded_requests() -> list[Any]:
    cases: list[Any] = []
    seen = set()
    for path in sorted(DATA.glob("*.json")):
        for step in json.loads(path.read_text())["steps"]:
            req, resp = step.get("request"), step.get("response")
            if req is None or resp is None or not hasattr(Spdk, req["method"]):
                continue
            key = json.dumps(req, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            cases.append(pytest.param(req, resp, id=f"{path.stem}-{req['method']}-{len(cases)}"))
    return cases


@pytest.mark.parametrize(("request_", "response"), recorded_requests())
async def test_recorded_request_through_wrapper(request_: dict[str, Any], response: dict[str, Any]) -> None:
    method, params = request_["method"], request_.get("params")
    rec = Recorder(result=response.get("result"), error=response.get("error"))
    spdk = Spdk(rec)
    fn = getattr(spdk, method)
    try:
        result = await (fn(**params) if isinstance(params, dict) else fn())
    except TypeError:
        # deliberately malformed requests (unknown keys, missing ones) cannot be expressed
        assert "error" in response, f"{method}{params} should be expressible"
        return
    except SpdkRpcError as exc:
        assert exc.code == response["error"]["code"]
        result = None
    [(sent_method, sent_params, _)] = rec.calls
    assert sent_method == method
    if sent_params != params:
        # e.g. `"params": {}` on a no-param method, or a required key left out: not expressible
        assert "error" in response, f"{method}: sent {sent_params}, recorded {params}"
        return
    if "result" in response:
        expected = response["result"]
        if method == "framework_get_config" and expected is None:
            expected = []
        assert result == expected


def test_every_recorded_method_has_a_wrapper() -> None:
    recorded = {
        step[kind]["method"]
        for path in DATA.glob("*.json")
        for step in json.loads(path.read_text())["steps"]
        for kind in ("request", "poll")
        if kind in step
    }
    wanted = (recorded - {"no_such_method"}) | {"keyring_file_add_key", "keyring_file_remove_key"}
    missing = sorted(m for m in wanted if not hasattr(Spdk, m))
    assert not missing
    for name in ("sim_bdev_fail", "sim_bdev_restore", "sim_rpc_delay", "sim_rpc_error", "sim_drop_connections"):
        assert hasattr(SimFaults, name)
        assert not hasattr(Spdk, name)


async def test_optional_params_omitted_and_no_params_member_when_empty() -> None:
    rec = Recorder(result=[])
    spdk = Spdk(rec)
    await spdk.bdev_get_bdevs()
    await spdk.bdev_lvol_get_lvstores(lvs_name="lvs0")
    await spdk.notify_get_notifications(id=0)
    assert [(m, p) for m, p, _ in rec.calls] == [
        ("bdev_get_bdevs", None),
        ("bdev_lvol_get_lvstores", {"lvs_name": "lvs0"}),
        ("notify_get_notifications", {"id": 0}),
    ]


async def test_value_types_become_spdk_objects() -> None:
    rec = Recorder(result=True)
    spdk = Spdk(rec)
    addr = ListenAddress("TCP", "127.0.0.1", "4420", "IPv4")
    await spdk.nvmf_subsystem_add_listener("nqn.x", addr, ana_state="optimized")
    await spdk.iscsi_create_portal_group(1, [Portal("127.0.0.1", "3260")])
    await spdk.iscsi_create_auth_group(1, [AuthSecret("u", "s"), AuthSecret("u2", "s2", "m", "ms")])
    await spdk.iscsi_create_target_node("disk1", "d1", [Lun("M0", 0)], [PgIgMap(1, 2)], 64, disable_chap=True)
    rec.result = 5
    assert await spdk.nvmf_subsystem_add_ns("nqn.x", Namespace("M0", uuid="0b6b7a4e-0f1e-4c7e-8a6e-1d2c3b4a5f01")) == 5
    sent = [p for _, p, _ in rec.calls]
    assert sent[0] == {
        "nqn": "nqn.x",
        "listen_address": {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "4420"},
        "ana_state": "optimized",
    }
    assert sent[1] == {"tag": 1, "portals": [{"host": "127.0.0.1", "port": "3260"}]}
    assert sent[2] == {
        "tag": 1,
        "secrets": [{"user": "u", "secret": "s"}, {"user": "u2", "secret": "s2", "muser": "m", "msecret": "ms"}],
    }
    assert sent[3] == {
        "name": "disk1",
        "alias_name": "d1",
        "pg_ig_maps": [{"pg_tag": 1, "ig_tag": 2}],
        "luns": [{"bdev_name": "M0", "lun_id": 0}],
        "queue_depth": 64,
        "disable_chap": True,
    }
    assert sent[4] == {"nqn": "nqn.x", "namespace": {"bdev_name": "M0", "uuid": "0b6b7a4e-0f1e-4c7e-8a6e-1d2c3b4a5f01"}}


@pytest.mark.parametrize(
    ("call", "result"),
    [
        (lambda s: s.bdev_get_bdevs(), {"not": "a list"}),
        (lambda s: s.bdev_malloc_create(8, 512), 17),
        (lambda s: s.bdev_malloc_delete("M0"), "yes"),
        (lambda s: s.nvmf_subsystem_add_ns("n", {"bdev_name": "M0"}), True),
        (lambda s: s.bdev_nvme_attach_controller("n", "TCP", "127.0.0.1"), [1]),
        (lambda s: s.spdk_get_version(), []),
    ],
)
async def test_unexpected_result_shape(call: Any, result: Any) -> None:
    with pytest.raises(SpdkResultError):
        await call(Spdk(Recorder(result=result)))


async def test_deadlines() -> None:
    rec = Recorder(result=[], timeout=10.0)
    spdk = Spdk(rec)
    await spdk.bdev_get_bdevs()
    await spdk.with_timeout(2.5).bdev_get_bdevs()
    await spdk.bdev_get_bdevs("M0", timeout=30_000)  # SPDK waits 30 s: the deadline goes past that
    await spdk.bdev_get_bdevs("M0", timeout=100)  # a short SPDK wait keeps the default deadline
    assert [t for _, _, t in rec.calls] == [10.0, 2.5, 35.0, 10.0]
    assert isinstance(spdk.with_timeout(1), Spdk)


def test_target_iqn() -> None:
    assert target_iqn("disk1") == "iqn.2016-06.io.spdk:disk1"
    assert target_iqn("iqn.2001-04.com.example:disk") == "iqn.2001-04.com.example:disk"
    assert target_iqn("EUI.0123456789ABCDEF") == "EUI.0123456789ABCDEF"
