"""The README's main job runs end to end: ``spdkvirt demo`` on a local 3-node cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spdkvirt.cli.main import main


def test_demo_story(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workdir = tmp_path / "w"
    assert main(["demo", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert "subsystem nqn.2026-11.io.spdkvirt:vol:demo1" in out
    assert re.search(r"listener  TCP 127\.0\.0\.1:\d+ on n\d", out)
    assert re.search(r"quiesce epoch \d+ \(device_failed\): volumes demo1", out)
    for phase in ("quiescing", "remapping", "resuming"):
        assert re.search(rf"^   {phase} +[\d.]+ ms( +[\d.]+ ms){{2}}$", out, re.M), phase
    assert "phase now done" in out
    assert re.search(r"new legs: .*\(rebuilding\)", out)
    assert "100.0%" in out
    assert "is healthy again" in out
    assert "volume demo1 deleted" in out
    assert out.rstrip().splitlines()[-1].startswith("kept ")
    assert (workdir / "demo.log").exists()


def test_demo_flag_after_global_workdir(tmp_path: Path) -> None:
    from spdkvirt.cli.main import build_parser

    args = build_parser().parse_args(["--workdir", str(tmp_path), "demo", "--keep"])
    assert args.workdir == str(tmp_path) and args.keep
