"""The state an export is shown in is what its node's SPDK is known to serve, not what was asked."""

from __future__ import annotations

from typing import Any

import pytest

from spdkvirt.api.methods import export_state

RECORD = {"volume": "v1", "export_id": "nvmf0", "protocol": "nvmf", "node": "n1", "state": "active"}


@pytest.mark.parametrize(
    ("record", "status", "alive", "shown"),
    [
        (RECORD, {"node": "n1", "exported": True}, True, "active"),
        (RECORD, {"node": "n1", "exported": True}, False, "pending"),  # its node is gone: not served
        (RECORD, {"node": "n1", "exported": False}, True, "pending"),  # not (yet) served there
        (RECORD, {"node": "n2", "exported": True}, True, "pending"),  # served by the old owner only
        (RECORD, None, True, "pending"),  # no report yet
        (RECORD | {"state": "removing"}, {"node": "n1", "exported": True}, True, "removing"),
        (RECORD | {"state": "failed"}, None, False, "failed"),
    ],
)
def test_export_state(record: dict[str, Any], status: dict[str, Any] | None, alive: bool, shown: str) -> None:
    assert export_state(record, status, alive) == shown
