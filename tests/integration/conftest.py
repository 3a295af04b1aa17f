"""Local clusters run on simulators, and on real spdk_tgt processes when SPDKVIRT_SPDK_TGT names one.
Master tests run over a file store (``store``) holding the records a cluster would (``alive``...)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spdkvirt.store import Store, open_store
from tests.conftest import spdk_kinds
from tests.support.targets import REAL_ARGS, real_command


@pytest.fixture(params=spdk_kinds())
def target(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The command a LocalCluster starts each node's SPDK with (empty: the simulator)."""
    if request.param == "sim":
        return ()
    cmd = real_command()
    assert cmd is not None
    return (*cmd, *REAL_ARGS)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """An empty file store."""
    s = await open_store(f"file://{tmp_path / 'db'}")
    try:
        yield s
    finally:
        await s.close()


def alive(node_id: str) -> dict[str, object]:
    """A node's liveness record (its agent holds its lease), for its first boot."""
    return {"kind": "alive", "schema_version": 1, "node": node_id, "boot_id": f"{node_id}-boot1", "pid": 1,
            "since": "2026-12-04T00:00:00Z"}  # fmt: skip
