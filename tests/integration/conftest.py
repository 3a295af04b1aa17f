"""Local clusters run on simulators, and on real spdk_tgt processes when SPDKVIRT_SPDK_TGT names one."""

from __future__ import annotations

import pytest

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
