"""The checker judges what the hosts saw: table tests."""

from __future__ import annotations

import pytest

from tests.nemesis.checker import History, judge


def history(acked: int, tried: int) -> History:
    h = History()
    for version in range(1, tried + 1):
        h.attempt("v1", 0, version)
        if version <= acked:
            h.ack("v1", 0, version)
    return h


@pytest.mark.parametrize(
    ("acked", "tried", "read", "state", "lost"),
    [
        (5, 5, 5, "online", False),  # the last acknowledged write reads back
        (5, 6, 6, "online", False),  # an unacknowledged write may have landed
        (5, 6, 4, "online", True),  # an acknowledged write is gone
        (5, 5, 7, "online", True),  # a version never written
        (5, 5, "read status media_error", "online", True),
        (5, 5, "not read", "failed", False),  # a failed volume says its copies are gone
    ],
)
def test_acknowledged_writes(acked: int, tried: int, read: int | str, state: str, lost: bool) -> None:
    v = judge(history(acked, tried), {("v1", 0): read}, {"v1": state})
    assert bool(v.lost) == lost and v.acked_writes == acked
    assert v.ok == (not lost)


def test_two_nodes_accepting_writes_in_one_round_is_double_serving() -> None:
    h = History()
    h.probed("v1", ["n1"], 1.0)
    h.probed("v1", [], 1.2)
    assert judge(h, {}, {"v1": "online"}).ok
    h.probed("v1", ["n2", "n1"], 1.4)
    v = judge(h, {}, {"v1": "online"})
    assert v.double_served == ("1.40s v1: writes accepted on n1, n2",)


@pytest.mark.parametrize(("state", "ok"), [("online", True), ("failed", True), ("degraded", False),
                                           ("online (epoch open)", False)])  # fmt: skip
def test_every_volume_converges(state: str, ok: bool) -> None:
    assert judge(History(), {}, {"v1": state}).ok == ok
