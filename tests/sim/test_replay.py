"""Every reference transcript (recorded from a real SPDK v26.05) replays with 0 mismatches.

Against the simulator always, and against a real spdk_tgt when SPDKVIRT_SPDK_TGT names one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import spdk_kinds
from tests.support.replayer import Replay

DATA = Path(__file__).resolve().parent.parent / "data" / "spdk-reference"
TRANSCRIPTS = sorted(DATA.glob("*.json"))


def test_transcripts_are_there() -> None:
    assert len(TRANSCRIPTS) >= 14


@pytest.mark.parametrize("kind", spdk_kinds())
@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_replay(path: Path, kind: str, tmp_path: Path) -> None:
    transcript = json.loads(path.read_text())
    result = Replay(transcript, kind, tmp_path).run()
    assert result.steps == len(transcript["steps"])
    assert not result.mismatches, "\n".join(result.mismatches)
