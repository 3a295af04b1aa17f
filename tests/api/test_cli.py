"""The API commands of the ``spdkvirt`` command line, against a FakeService behind a real UNIX socket."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.api import ApiServer, api_socket
from spdkvirt.api.methods import METHODS
from spdkvirt.api.server import Dispatcher
from spdkvirt.cli import api_cmds
from spdkvirt.cli.main import build_parser, main
from spdkvirt.cli.output import progress_bar
from tests.api.fake import FakeService


class Cluster:
    """A FakeService served on ``workdir/api.sock`` from an event loop in a thread of its own."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.fake = FakeService()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = ApiServer(Dispatcher(self.fake, self.fake, debug=True), unix_path=api_socket(workdir))

    def __enter__(self) -> Cluster:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path) as c:
        yield c


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_method_has_a_command() -> None:
    assert set(api_cmds.COMMANDS) == set(METHODS)
    parser = build_parser()
    for method, (group, action) in api_cmds.COMMANDS.items():
        positional = {"create": ["x"], "show": ["x"], "delete": ["x", "y"], "resize": ["x"], "snapshot": ["x", "y"]}
        args = {
            ("volume", "create"): ["v", "--size", "1MiB"],
            ("volume", "resize"): ["v", "--size", "1MiB"],
            ("volume", "clone"): ["s", "v"],
            ("volume", "delete"): ["v"],
            ("export", "create"): ["v", "--protocol", "nvmf"],
            ("device", "set-state"): ["n", "d", "maintenance"],
        }.get((group, action), positional.get(action, []))
        parsed = parser.parse_args(["--workdir", "/w", group, action, *args])
        assert parsed.func is api_cmds.run, method
        assert parsed.api_action.__name__ in (method, method.replace("_get", "_show")), method


def test_create_show_list_delete(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    w = str(cluster.workdir)
    code, out, err = cli(capsys, "--workdir", w, "volume", "create", "v1", "--size", "64MiB", "--redundancy", "2")
    assert (code, err) == (0, "")
    assert "64 MiB" in out and "v1-0" in out
    assert cluster.fake.calls[-1] == (
        "volume_create",
        {"name": "v1", "size_bytes": 64 << 20, "redundancy": 2, "thin": True},
    )

    code, out, _ = cli(capsys, "--workdir", w, "--json", "volume", "show", "v1")
    vol = json.loads(out)
    assert code == 0 and vol["name"] == "v1" and len(vol["legs"]) == 2

    code, out, _ = cli(capsys, "--workdir", w, "volume", "show", "v1", "--json")
    assert code == 0 and json.loads(out) == vol

    code, out, _ = cli(capsys, "--workdir", w, "volume", "list")
    assert code == 0 and out.splitlines()[0].split() == ["NAME", "SIZE", "COPIES", "STATE", "OWNER", "EXPORTS"]

    assert cli(capsys, "--workdir", w, "volume", "resize", "v1", "--size", "0.125GiB")[0] == 0
    assert cluster.fake.volumes["v1"]["size_bytes"] == 128 << 20
    assert cli(capsys, "--workdir", w, "volume", "snapshot", "v1", "s1")[0] == 0
    assert cli(capsys, "--workdir", w, "volume", "clone", "s1", "v2")[0] == 0
    code, out, _ = cli(capsys, "--workdir", w, "export", "create", "v2", "--protocol", "nvmf", "--allow-any-host")
    assert code == 0 and "nqn.2026-11.io.spdkvirt:vol:v2" in out
    code, out, _ = cli(capsys, "--workdir", w, "--json", "export", "list")
    assert [e["export_id"] for e in json.loads(out)] == ["e1"]
    assert cli(capsys, "--workdir", w, "export", "delete", "v2", "e1")[0] == 0
    code, out, _ = cli(capsys, "--workdir", w, "volume", "delete", "v1")
    assert (code, out.strip()) == (0, "deleted volume v1")


def test_reads(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    w = str(cluster.workdir)
    for argv in (["node", "list"], ["device", "list", "--node", "n1"], ["cluster", "status"], ["epoch", "list"]):
        code, out, err = cli(capsys, "--workdir", w, *argv)
        assert code == 0 and out and not err, argv
    code, out, _ = cli(capsys, "--workdir", w, "device", "set-state", "n1", "d0", "maintenance", "--reason", "swap")
    assert code == 0 and "maintenance" in out
    assert cluster.fake.calls[-1][1] == {"node": "n1", "device_id": "d0", "state": "maintenance", "reason": "swap"}


def test_api_error_is_one_line_with_the_path(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    w = str(cluster.workdir)
    code, out, err = cli(capsys, "--workdir", w, "volume", "create", "Bad/Name", "--size", "64MiB")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: invalid params: must match") and err.rstrip().endswith("($.name)")

    code, _, err = cli(capsys, "--workdir", w, "volume", "show", "nope")
    assert (code, err) == (1, "error: volume 'nope' not found\n")

    cli(capsys, "--workdir", w, "volume", "create", "v1", "--size", "64MiB")
    code, _, err = cli(capsys, "--workdir", w, "volume", "resize", "v1", "--size", "32MiB")
    assert (code, err) == (1, "error: volume 'v1' cannot shrink ($.size_bytes)\n")

    code, _, err = cli(capsys, "--workdir", w, "volume", "create", "v3", "--size", "1MiB", "--redundancy", "5")
    assert code == 1 and err.rstrip().endswith("($.redundancy)")


def test_usage_and_reachability_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as bad_size:
        main(["--workdir", str(tmp_path), "volume", "create", "v", "--size", "64XB"])
    assert bad_size.value.code == 2
    assert "unknown unit" in capsys.readouterr().err

    code, _, err = cli(capsys, "--workdir", str(tmp_path / "nothing"), "node", "list")
    assert (
        code == api_cmds.EXIT_UNREACHABLE
        and err.startswith("error: cannot reach the API at unix://")
        and err.count("\n") == 1
    )


def test_no_cluster_named(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SPDKVIRT_API", "SPDKVIRT_WORKDIR"):
        monkeypatch.delenv(var, raising=False)
    code, _, err = cli(capsys, "node", "list")
    assert code == api_cmds.EXIT_USAGE and "--workdir" in err


def test_http_needs_a_private_token_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = tmp_path / "token"
    token.write_text("x" * 32)
    token.chmod(0o644)
    code, _, err = cli(capsys, "--api", "http://127.0.0.1:9", "--token-file", str(token), "node", "list")
    assert code == api_cmds.EXIT_USAGE and "chmod 600" in err


def test_watch_redraws_until_the_rebuild_ends(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    w = str(cluster.workdir)
    cli(capsys, "--workdir", w, "volume", "create", "v1", "--size", "64MiB")
    vol: dict[str, Any] = cluster.fake.volumes["v1"]
    vol["state"], vol["rebuild_percent"] = "rebuilding", 10.0
    steps = iter([40.0, 80.0, None])
    real_get = cluster.fake.volume_get

    async def progressing(params: Any) -> Any:
        shown = await real_get(params)
        nxt = next(steps, None)
        if nxt is None:
            vol["state"] = "healthy"
            vol.pop("rebuild_percent", None)
        else:
            vol["rebuild_percent"] = nxt
        return shown

    cluster.fake.volume_get = progressing  # type: ignore[method-assign]
    cluster.server.dispatcher.handlers["volume_get"] = progressing
    code, out, _ = cli(capsys, "--workdir", w, "volume", "show", "v1", "--watch", "--interval", "0.01")
    assert code == 0
    assert progress_bar(10.0) in out and progress_bar(40.0) in out and progress_bar(80.0) in out
    assert out.count("name:") == 4


def test_a_volume_still_creating_says_so_and_exits_4(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    w = str(cluster.workdir)
    cluster.fake.result_override = cluster.fake._volume("v1", 64 << 20, 2) | {"state": "creating"}
    code, out, err = cli(capsys, "--workdir", w, "volume", "create", "v1", "--size", "64MiB")
    assert code == api_cmds.EXIT_PENDING == 4
    assert "creating" in out and "still creating" in err and "volume show v1 --watch" in err
