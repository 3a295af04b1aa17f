"""The state a volume is shown in is what its nodes can serve: a copy on a node that does not
hold its liveness (its agent gone, or its SPDK lost) is not a healthy copy."""

from __future__ import annotations

from typing import Any

import pytest

from spdkvirt.api.methods import volume_view

LEGS = [{"leg_id": "l1", "node": "n1", "device": "d1", "state": "in_sync"},
        {"leg_id": "l2", "node": "n2", "device": "d2", "state": "in_sync"}]  # fmt: skip
RECORD: dict[str, Any] = {
    "name": "v1", "uuid": "u", "size_bytes": 1 << 20, "redundancy": 2, "raid_level": "raid1",
    "owner_node": "n1", "state": "online", "generation": 1, "legs": LEGS,
}  # fmt: skip


@pytest.mark.parametrize(
    ("record", "alive", "shown"),
    [
        (RECORD, {"n1", "n2"}, "healthy"),
        (RECORD, {"n1"}, "degraded"),  # the copy on n2 is out of reach
        (RECORD, {"n2"}, "degraded"),  # so is the owner itself
        (RECORD, set(), "degraded"),
        (RECORD | {"state": "failed"}, set(), "failed"),
        (RECORD | {"state": "degraded"}, {"n1", "n2"}, "degraded"),
        (RECORD | {"state": "creating"}, {"n1"}, "creating"),
    ],
)
def test_volume_state(record: dict[str, Any], alive: set[str], shown: str) -> None:
    assert volume_view(record, [], None, alive=frozenset(alive))["state"] == shown
