"""When an agent takes its SPDK for lost: gone (refused or dropped) after 1 s, hung after 15 s,
never for an error SPDK answered with, and never for a busy SPDK that answers late."""

from __future__ import annotations

import pytest

from spdkvirt.agent.agent import spdk_lost
from spdkvirt.spdk.errors import SpdkConnectError, SpdkConnectionLost, SpdkError, SpdkRpcError, SpdkTimeout


@pytest.mark.parametrize(
    ("error", "quiet", "lost"),
    [
        (SpdkConnectError("refused"), 0.5, False),
        (SpdkConnectError("refused"), 1.0, True),
        (SpdkConnectionLost("closed"), 1.2, True),
        (SpdkTimeout("no reply within 2.0 s"), 2.0, False),  # busy: a large batch ahead of the call
        (SpdkTimeout("no reply within 2.0 s"), 14.0, False),
        (SpdkTimeout("no reply within 2.0 s"), 15.0, True),  # hung
        (SpdkRpcError(-32601, "Method not found"), 60.0, False),  # it answered
    ],
)
def test_spdk_lost(error: SpdkError, quiet: float, lost: bool) -> None:
    assert spdk_lost(error, quiet) is lost
