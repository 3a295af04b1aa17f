"""Remote legs between two spdkvirt-sim processes: NVMe/TCP export, attach, raid1, SIGKILL of the exporter.

The exporter (a) serves a malloc over NVMe/TCP on 127.0.0.1; the other target (b) attaches it and
mirrors it with a local malloc. Killing a must make b's controller reconnect every
reconnect_delay_sec, keep the raid member until ctrlr_loss_timeout_sec, then delete the controller
and degrade the raid; an exporter that comes back in time is reconnected silently.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.targets import TargetProcess, make_target

NQN = "nqn.2016-06.io.spdk:leg1"
NGUID = "3F1D2C4B5A694E7D8C1B2A3B4C5D6E01"
LEG_UUID = "3f1d2c4b-5a69-4e7d-8c1b-2a3b4c5d6e01"

pytestmark = pytest.mark.slow


class RpcFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error)
        self.code = error["code"]


def rpc(tp: TargetProcess, method: str, params: dict[str, Any] | None = None) -> Any:
    """One raw JSON-RPC call on the target's UNIX socket."""
    req: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        req["params"] = params
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(tp.socket_path)
        s.sendall(json.dumps(req).encode())
        buf = b""
        while True:
            chunk = s.recv(65536)
            assert chunk, f"{method}: connection closed"
            buf += chunk
            try:
                reply = json.loads(buf)
            except ValueError:
                continue
            if "error" in reply:
                raise RpcFailed(reply["error"])
            return reply["result"]


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def poll(probe: Callable[[], Any], ok: Callable[[Any], bool], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {value!r}"
        time.sleep(interval)


@pytest.fixture
def targets(tmp_path: Path) -> Iterator[Callable[[str], TargetProcess]]:
    started: list[TargetProcess] = []

    def start(name: str) -> TargetProcess:
        tp = make_target("sim", tmp_path, name)
        started.append(tp)
        tp.start()
        return tp

    yield start
    for tp in started:
        tp.kill()


def export(a: TargetProcess, port: str, blocks: int = 32768) -> None:
    """A fresh malloc behind a subsystem with a fixed NGUID, listening on 127.0.0.1:port."""
    rpc(a, "bdev_malloc_create", {"name": "L", "num_blocks": blocks, "block_size": 512})
    rpc(a, "nvmf_create_transport", {"trtype": "TCP"})
    rpc(a, "nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True, "serial_number": "SPDKLEG0001"})
    rpc(a, "nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "L", "nguid": NGUID, "uuid": LEG_UUID}})
    rpc(
        a,
        "nvmf_subsystem_add_listener",
        {"nqn": NQN, "listen_address": {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port}},
    )


def attach(b: TargetProcess, port: str, loss: int, delay: int, fast_fail: int) -> Any:
    return rpc(
        b,
        "bdev_nvme_attach_controller",
        {
            "name": "nvme0",
            "trtype": "TCP",
            "adrfam": "IPv4",
            "traddr": "127.0.0.1",
            "trsvcid": port,
            "subnqn": NQN,
            "ctrlr_loss_timeout_sec": loss,
            "reconnect_delay_sec": delay,
            "fast_io_fail_timeout_sec": fast_fail,
        },
    )


def mirror(b: TargetProcess) -> dict[str, Any]:
    [raid] = rpc(b, "bdev_raid_get_bdevs", {"category": "all"})
    return dict(raid)


def ctrlr_states(b: TargetProcess) -> list[str]:
    return [c["state"] for entry in rpc(b, "bdev_nvme_get_controllers") for c in entry["ctrlrs"]]


def build_mirror(a: TargetProcess, b: TargetProcess, port: str, loss: int, delay: int, fast_fail: int) -> None:
    export(a, port)
    assert attach(b, port, loss, delay, fast_fail) == ["nvme0n1"]
    [leg] = rpc(b, "bdev_get_bdevs", {"name": "nvme0n1"})
    assert leg["uuid"] == LEG_UUID and leg["num_blocks"] == 32768
    rpc(b, "bdev_malloc_create", {"name": "B0", "num_blocks": 32768, "block_size": 512})
    rpc(
        b,
        "bdev_raid_create",
        {"name": "mirror", "raid_level": "raid1", "base_bdevs": ["B0", "nvme0n1"], "superblock": True},
    )
    raid = mirror(b)
    assert raid["state"] == "online" and raid["num_base_bdevs_discovered"] == 2


def test_exported_malloc_carries_the_raid_superblock(targets: Callable[[str], TargetProcess]) -> None:
    a, b = targets("a"), targets("b")
    port = free_port()
    build_mirror(a, b, port, loss=5, delay=1, fast_fail=2)
    # the host sees the exporter's controller and the exporter sees the host
    [ctrlr] = rpc(a, "nvmf_subsystem_get_controllers", {"nqn": NQN})
    assert ctrlr["hostnqn"] == rpc(b, "bdev_nvme_get_controllers")[0]["ctrlrs"][0]["host"]["nqn"]
    assert [q["qid"] for q in rpc(a, "nvmf_subsystem_get_qpairs", {"nqn": NQN})] == [0, 1]
    # the superblock written by b's raid went over the wire into a's malloc
    stats = rpc(a, "bdev_get_iostat", {"names": ["L"]})["bdevs"][0]
    assert stats["num_write_ops"] > 0 and stats["bytes_written"] > 0
    # a detach tells the exporter: its controller is gone by the time the detach returns
    assert rpc(b, "bdev_nvme_detach_controller", {"name": "nvme0"}) is True
    assert rpc(a, "nvmf_subsystem_get_controllers", {"nqn": NQN}) == []
    assert mirror(b)["num_base_bdevs_discovered"] == 1


def test_killed_exporter_degrades_the_mirror_after_ctrlr_loss_timeout(
    targets: Callable[[str], TargetProcess],
) -> None:
    a, b = targets("a"), targets("b")
    port = free_port()
    loss = 3
    build_mirror(a, b, port, loss=loss, delay=1, fast_fail=2)

    a.kill()  # SIGKILL: the TCP connections reset
    killed = time.monotonic()
    poll(lambda: ctrlr_states(b), lambda s: s == ["reconnect_is_delayed"], timeout=1.0)
    # reconnect attempts go on; the leg and the raid member stay until the loss timeout
    time.sleep(max(0.0, killed + loss - 1.0 - time.monotonic()))
    assert ctrlr_states(b) in (["reconnect_is_delayed"], ["resetting"])
    assert mirror(b)["num_base_bdevs_discovered"] == 2
    assert rpc(b, "bdev_get_bdevs", {"name": "nvme0n1"})[0]["claimed"] is True

    poll(lambda: mirror(b)["num_base_bdevs_discovered"], lambda n: n == 1, timeout=loss + 3)
    degraded_after = time.monotonic() - killed
    assert loss - 0.5 <= degraded_after <= loss + 2.0, degraded_after
    assert rpc(b, "bdev_nvme_get_controllers") == []
    with pytest.raises(RpcFailed) as err:
        rpc(b, "bdev_get_bdevs", {"name": "nvme0n1"})
    assert err.value.code == -19
    raid = mirror(b)
    assert raid["state"] == "online" and raid["num_base_bdevs_operational"] == 1
    assert raid["base_bdevs_list"][1]["name"] is None

    # once deleted, nothing reconnects when the exporter comes back
    a.start()
    export(a, port)
    time.sleep(2.5)
    assert rpc(b, "bdev_nvme_get_controllers") == []
    assert rpc(a, "nvmf_subsystem_get_controllers", {"nqn": NQN}) == []

    # a new attach brings the leg back; the raid takes it only when told, with a full rebuild
    assert attach(b, port, loss, 1, 2) == ["nvme0n1"]
    assert mirror(b)["num_base_bdevs_discovered"] == 1
    rpc(b, "bdev_raid_add_base_bdev", {"raid_bdev": "mirror", "base_bdev": "nvme0n1"})
    poll(lambda: mirror(b), lambda r: r["num_base_bdevs_discovered"] == 2 and "process" not in r, timeout=30)

    # detaching removes the member again; a second detach finds nothing
    assert rpc(b, "bdev_nvme_detach_controller", {"name": "nvme0"}) is True
    assert mirror(b)["num_base_bdevs_discovered"] == 1
    with pytest.raises(RpcFailed) as err:
        rpc(b, "bdev_nvme_detach_controller", {"name": "nvme0"})
    assert err.value.code == -19


def test_exporter_back_within_ctrlr_loss_timeout_is_reconnected_silently(
    targets: Callable[[str], TargetProcess],
) -> None:
    a, b = targets("a"), targets("b")
    port = free_port()
    build_mirror(a, b, port, loss=20, delay=1, fast_fail=2)

    a.kill()
    poll(lambda: ctrlr_states(b), lambda s: s == ["reconnect_is_delayed"], timeout=1.0)
    a.start()
    export(a, port)  # an EMPTY malloc behind the same NGUID: nothing notices
    poll(lambda: ctrlr_states(b), lambda s: s == ["enabled"], timeout=5.0)
    raid = mirror(b)
    assert raid["num_base_bdevs_discovered"] == 2 and raid["base_bdevs_list"][1]["name"] == "nvme0n1"
    [leg] = rpc(b, "bdev_get_bdevs", {"name": "nvme0n1"})
    assert leg["uuid"] == LEG_UUID
    assert len(rpc(a, "nvmf_subsystem_get_controllers", {"nqn": NQN})) == 1


def test_silent_exporter_is_caught_by_keep_alive(targets: Callable[[str], TargetProcess]) -> None:
    a, b = targets("a"), targets("b")
    port = free_port()
    assert rpc(b, "bdev_nvme_set_options", {"keep_alive_timeout_ms": 2000}) is True
    build_mirror(a, b, port, loss=3, delay=1, fast_fail=2)
    assert a.proc is not None
    os.kill(a.proc.pid, signal.SIGSTOP)  # the connections stay up but nothing answers
    try:
        stopped = time.monotonic()
        poll(lambda: ctrlr_states(b), lambda s: s != ["enabled"], timeout=4.0, interval=0.1)
        assert time.monotonic() - stopped >= 1.0  # noticed by the keep-alive, not at once
        poll(lambda: mirror(b)["num_base_bdevs_discovered"], lambda n: n == 1, timeout=8.0, interval=0.1)
        assert rpc(b, "bdev_nvme_get_controllers") == []
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)


def test_attach_errors(targets: Callable[[str], TargetProcess]) -> None:
    b = targets("b")
    port = free_port()
    with pytest.raises(RpcFailed) as err:
        attach(b, port, 5, 1, 2)  # nothing listens there
    assert err.value.code == -5
    with pytest.raises(RpcFailed) as err:
        attach(b, port, 5, 0, 2)  # reconnect_delay_sec 0 with a loss timeout
    assert err.value.code == -22
    with pytest.raises(RpcFailed) as err:
        rpc(b, "bdev_nvme_get_controllers", {"name": "nvme0"})
    assert err.value.code == -22
    with pytest.raises(RpcFailed) as err:
        rpc(b, "bdev_nvme_attach_controller", {"name": "nvme0", "trtype": "TCP"})
    assert err.value.code == -32603
