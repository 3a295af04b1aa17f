"""``spdkvirt rpc --node ID ...`` reaches a node's SPDK through rpc.py's own parsers."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

from spdkvirt.cli.main import main
from spdkvirt.local import LocalCluster


def run_cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    return code, out.getvalue()


async def test_rpc_reaches_the_named_node(tmp_path: Path, target: tuple[str, ...]) -> None:
    async with LocalCluster(tmp_path / "c", nodes=2, devices=1, device_size=64 << 20, target=target) as c:
        await c.wait_ready()
        wd = str(c.workdir)
        code, out = await asyncio.to_thread(run_cli, ["--workdir", wd, "rpc", "--node", "n2", "bdev_lvol_get_lvstores"])
        assert code == 0, out
        assert [s["name"] for s in json.loads(out)] == ["lvs_n2d1"]
        code, out = await asyncio.to_thread(run_cli, ["--workdir", wd, "rpc", "--node", "n9", "bdev_get_bdevs"])
        assert code == 1
        assert "n9" in out
