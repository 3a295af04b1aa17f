"""A bounded set of seeded fault schedules against a local cluster (``bench/nemesis.py`` runs many).

SPDKVIRT_NEMESIS_SEEDS (say ``17`` or ``1-5``) runs other seeds: a failing seed reproduces.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import spdk_kinds
from tests.nemesis.run import run_schedule
from tests.support.targets import REAL_ARGS, real_command

pytestmark = pytest.mark.slow


def seeds(default: str = "1-4") -> list[int]:
    spec = os.environ.get("SPDKVIRT_NEMESIS_SEEDS", default)
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


@pytest.mark.parametrize("kind", spdk_kinds())
@pytest.mark.parametrize("seed", seeds())
async def test_fault_schedule_keeps_every_acknowledged_write(tmp_path: Path, seed: int, kind: str) -> None:
    cmd = real_command() if kind != "sim" else None
    target = (*cmd, *REAL_ARGS) if cmd is not None else ()
    r = await run_schedule(tmp_path / "c", seed, target=target)
    print(r.show())
    assert r.verdict.ok, r.show()
