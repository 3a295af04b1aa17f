"""End to end: ``spdkvirt up`` as an operator runs it, driven by the ``spdkvirt`` command and the API client.

``up`` runs as a process of its own (three simulated nodes in a temporary work directory); every
command is a separate ``python -m spdkvirt.cli.main --workdir DIR ...``, as typed in a shell.
At the end ``up`` gets SIGTERM, and nothing it started may be left running.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.api.client import ApiUnreachable, call_sync
from spdkvirt.api.errors import ApiError
from tests.conftest import spdk_kinds
from tests.support.procfs import children_of
from tests.support.targets import REAL_ARGS, real_command

pytestmark = pytest.mark.slow

DEADLINE = 60.0
MIB = 1 << 20


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def mentioning(text: str) -> set[int]:
    """Running processes whose command line mentions ``text``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and running(int(entry.name)):
            found.add(int(entry.name))
    return found


class Up:
    """``spdkvirt up --nodes 3 --workdir DIR`` in a process of its own (``--spdk-tgt`` for real
    targets)."""

    def __init__(self, workdir: Path, spdk_tgt: str = "") -> None:
        self.workdir = workdir
        self.spdk_tgt = spdk_tgt
        self.out = workdir.parent / "up.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "spdkvirt.cli.main", "up", "--nodes", "3", "--workdir", str(self.workdir)]
        if self.spdk_tgt:
            cmd += ["--spdk-tgt", self.spdk_tgt]
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def api(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return call_sync(str(self.workdir / "api.sock"), method, params, timeout=30)

    def wait_ready(self) -> None:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            assert self.proc is not None
            assert self.proc.poll() is None, f"up ended early:\n{self.output()}"
            try:
                st = self.api("cluster_status")
                if st["nodes"]["up"] == 3 and st["devices"].get("available") == 6 and "try:" in self.output():
                    return
            except (ApiUnreachable, ApiError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the cluster did not come up:\n{self.output()}")

    def cli(self, *argv: str) -> Done:
        cmd = [sys.executable, "-m", "spdkvirt.cli.main", "--workdir", str(self.workdir), *argv]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE, check=False)
        return Done(p.returncode, p.stdout, p.stderr)

    def ok(self, *argv: str) -> Done:
        done = self.cli(*argv)
        assert done.code == 0, f"{argv}: {done.code}\n{done.out}\n{done.err}"
        assert done.err == "", done.err
        return done

    def stop(self) -> int:
        """SIGTERM, then the exit code (SIGKILL after the deadline, and fail)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"up did not stop on SIGTERM:\n{self.output()}") from None


@pytest.fixture(params=spdk_kinds())
def up(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Up]:
    real = real_command() if request.param == "real" else None
    u = Up(tmp_path / "cluster", shlex.join([*real, *REAL_ARGS]) if real else "")
    u.start()
    try:
        yield u
    finally:
        if u.proc is not None and u.proc.poll() is None:
            u.proc.kill()
            u.proc.wait()


def until(what: str, check: Callable[[], Any], within: float = DEADLINE) -> Any:
    end = time.monotonic() + within
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {within:g} s")


def one_error_line(done: Done) -> str:
    """A failed command: a non-zero exit and exactly one line on stderr, no traceback."""
    assert done.code != 0, done
    lines = done.err.splitlines()
    assert len(lines) == 1, done.err
    assert lines[0].startswith("error: "), done.err
    assert "Traceback" not in done.err + done.out
    return lines[0]


def test_up_then_the_cli_end_to_end(up: Up) -> None:
    up.wait_ready()
    banner = up.output()
    assert f"unix://{(up.workdir / 'api.sock').resolve()}" in banner
    assert f"spdkvirt --workdir {up.workdir} volume create v1 --size 64MiB --redundancy 2" in banner
    sims = children_of(up.proc.pid if up.proc else 0)
    assert len(sims) == 3, sims

    # a second cluster on the same work directory is refused, and the first one carries on
    second = subprocess.run(
        [sys.executable, "-m", "spdkvirt.cli.main", "up", "--nodes", "3", "--workdir", str(up.workdir)],
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip
    assert second.returncode == 1, second
    assert second.stderr.startswith("error: ") and "Traceback" not in second.stderr, second.stderr
    assert up.api("cluster_status")["nodes"]["up"] == 3
    assert children_of(up.proc.pid if up.proc else 0) == sims

    # a mirrored volume: two legs on two nodes
    created = up.ok("--json", "volume", "create", "v1", "--size", "64MiB", "--redundancy", "2").json()
    assert created["name"] == "v1" and created["size_bytes"] == 64 * MIB and created["state"] == "healthy"
    vol = up.ok("--json", "volume", "show", "v1").json()
    assert len(vol["legs"]) == 2
    assert len({leg["node"] for leg in vol["legs"]}) == 2
    assert all(leg["state"] == "in_sync" for leg in vol["legs"])
    table = up.ok("volume", "list").out
    assert table.splitlines()[0].split()[:3] == ["NAME", "SIZE", "COPIES"]
    assert table.splitlines()[1].split()[:4] == ["v1", "64", "MiB", "2"]
    assert [v["name"] for v in up.api("volume_list")] == ["v1"]

    # export over NVMe/TCP
    exp = up.ok("--json", "export", "create", "v1", "--protocol", "nvmf", "--allow-any-host").json()
    assert exp["nvmf"]["subnqn"].endswith(":vol:v1") and exp["node"] == vol["owner_node"]
    listed = up.ok("--json", "export", "list").json()
    assert [(e["volume"], e["export_id"]) for e in listed] == [("v1", exp["export_id"])]
    assert exp["nvmf"]["subnqn"] in up.ok("export", "list").out
    assert up.ok("--json", "volume", "show", "v1").json()["exports"] == [exp["export_id"]]

    # nodes, devices, the cluster
    nodes = up.ok("--json", "node", "list").json()
    assert sorted(n["node_id"] for n in nodes) == ["n1", "n2", "n3"]
    assert all(n["state"] == "up" and n["alive"] for n in nodes)
    assert "n3" in up.ok("node", "list").out
    devices = up.ok("--json", "device", "list").json()
    assert len(devices) == 6 and all(d["state"] == "available" for d in devices)
    assert sum(d["legs"] for d in devices) == 2
    status = up.ok("--json", "cluster", "status").json()
    assert status["nodes"]["up"] == 3 and status["volumes"]["healthy"] == 1
    assert "leader" in status
    assert "leader:" in up.ok("cluster", "status").out
    assert up.ok("--json", "epoch", "list").json() == []

    # maintenance on a device of the volume: an epoch moves the leg away
    leg = next(x for x in vol["legs"] if x["node"] != vol["owner_node"])
    dev = up.ok("--json", "device", "set-state", leg["node"], leg["device"], "maintenance",
                "--reason", "firmware update").json()  # fmt: skip
    assert dev["state"] == "maintenance"

    def moved() -> Any:
        v = up.api("volume_get", {"name": "v1"})
        placed = {(x["node"], x["device"]) for x in v["legs"]}
        settled = v["state"] == "healthy" and all(x["state"] == "in_sync" for x in v["legs"])
        return v if settled and (leg["node"], leg["device"]) not in placed else None

    after = until("the leg moved off the device in maintenance", moved)
    assert len(after["legs"]) == 2 and len({x["node"] for x in after["legs"]}) == 2
    epochs = up.ok("--json", "epoch", "list").json()
    assert epochs and epochs[0]["phase"] == "done" and "v1" in epochs[0]["affected_volumes"]
    assert after["epoch"] == epochs[0]["number"]
    assert "device_" in epochs[0]["reason"] or epochs[0]["reason"] == "manual"
    assert str(epochs[0]["number"]) in up.ok("epoch", "list").out
    drained = {(d["node"], d["device_id"]): d for d in up.api("device_list")}[(leg["node"], leg["device"])]
    assert drained["state"] == "maintenance" and drained["legs"] == 0

    # grow: fine; shrink: refused with one clear line
    grown = up.ok("--json", "volume", "resize", "v1", "--size", "128MiB").json()
    assert grown["size_bytes"] == 128 * MIB
    assert up.api("volume_get", {"name": "v1"})["size_bytes"] == 128 * MIB
    line = one_error_line(up.cli("volume", "resize", "v1", "--size", "32MiB"))
    assert "shrink" in line and "$.size_bytes" in line
    assert up.api("volume_get", {"name": "v1"})["size_bytes"] == 128 * MIB

    # errors: one line each, no traceback
    assert "not found" in one_error_line(up.cli("volume", "show", "nosuch")).lower()
    one_error_line(up.cli("volume", "create", "v1", "--size", "64MiB"))
    usage = up.cli("volume", "create", "v2", "--size", "lots")
    assert usage.code == 2 and "Traceback" not in usage.err
    assert usage.err.splitlines()[-1].endswith("argument --size: bad size 'lots': use a number with an optional unit, "
                                               "e.g. 64MiB or 1.5GiB")  # fmt: skip
    one_error_line(up.cli("device", "set-state", "n9", "d9", "maintenance"))
    held = one_error_line(up.cli("volume", "delete", "v1"))
    assert "export" in held

    # delete the export, then the volume
    assert "deleted export" in up.ok("export", "delete", "v1", exp["export_id"]).out
    assert up.ok("--json", "export", "list").json() == []
    assert "deleted volume v1" in up.ok("volume", "delete", "v1").out
    until("the volume gone", lambda: up.ok("--json", "volume", "list").json() == [])
    assert until("the legs gone", lambda: all(d["legs"] == 0 for d in up.api("device_list")))

    # SIGTERM: a clean stop, and nothing it started left running
    started = children_of(up.proc.pid if up.proc else 0) | sims
    assert up.stop() == 0
    assert "stopping" in up.output()
    assert "Traceback" not in up.output()
    until("its simulators gone", lambda: not any(running(p) for p in started), 10)
    assert not mentioning(str(up.workdir))
    assert not (up.workdir / "api.sock").exists()
    one_error_line(up.cli("cluster", "status"))
