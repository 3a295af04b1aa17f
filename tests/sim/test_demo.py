"""The README's main job runs end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from spdkvirt.cli.main import main


def test_demo_story(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--workdir", str(tmp_path / "w"), "--rpc-poll-ms", "0"]) == 0
    out = capsys.readouterr().out
    assert "1/2 members operational" in out
    assert "rebuilt in" in out
    assert "(same uuid: True)" in out
    assert out.rstrip().endswith("done")
