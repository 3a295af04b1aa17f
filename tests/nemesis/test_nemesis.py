"""A bounded set of seeded fault schedules against a local cluster (``bench/nemesis.py`` runs many).

SPDKVIRT_NEMESIS_SEEDS (say ``17`` or ``1-5``) runs other seeds: a failing seed reproduces.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.nemesis.run import run_schedule

pytestmark = pytest.mark.slow


def seeds() -> list[int]:
    spec = os.environ.get("SPDKVIRT_NEMESIS_SEEDS", "1-4")
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


@pytest.mark.parametrize("seed", seeds())
async def test_fault_schedule_keeps_every_acknowledged_write(tmp_path: Path, seed: int) -> None:
    r = await run_schedule(tmp_path / "c", seed)
    print(r.show())
    assert r.verdict.ok, r.show()
