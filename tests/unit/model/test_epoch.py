"""The epoch protocol, driven event by event: phases, per-volume answers, deadlines, re-remaps,
takeover by a new leader, expelling silent nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from spdkvirt.model.epoch import (
    Action,
    Answer,
    Answered,
    Deadlines,
    Down,
    Event,
    Expel,
    Finished,
    Gone,
    Remap,
    Remapped,
    Stale,
    State,
    Tick,
    Write,
    begin,
    step,
    take_over,
)

D = Deadlines(quiesce=2.0, remap=8.0, resume=5.0, per_volume=0.01, hold_budget=20.0)
TOKEN = 7
VOLS = frozenset({"a", "b"})
OWNERS = {"a": "n1", "b": "n2"}
MEMBERS = {"a": frozenset({"n1", "n3"}), "b": frozenset({"n2", "n3"})}


def fresh() -> State:
    return begin(1, TOKEN, VOLS, OWNERS, frozenset({"n1", "n2", "n3"}), now=0.0)


def ans(node: str, phase: str, done: Mapping[str, int] | Sequence[str] = (), failed: Mapping[str, str] | None = None,
        token: int = TOKEN, at: float = 0.1) -> Answered:  # fmt: skip
    d = dict(done) if isinstance(done, Mapping) else dict.fromkeys(done, 0)
    return Answered(Answer(node, phase, token, d, failed or {}), at)


def run(state: State, events: Sequence[Event]) -> tuple[State, list[Action]]:
    actions: list[Action] = []
    for e in events:
        state, out = step(state, e, D)
        actions += out
    return state, actions


def quiesced(state: State | None = None) -> State:
    s, _ = run(state or fresh(), [ans("n1", "quiescing", ["a"]), ans("n2", "quiescing", ["b"]),
                                  ans("n3", "quiescing")])  # fmt: skip
    return s


def remapping(gens: Mapping[str, int] | None = None) -> State:
    s, _ = step(quiesced(), Remapped(gens or {"a": 5, "b": 9}, MEMBERS, 0.3), D)
    return s


ALL_REMAPPED = [ans("n1", "remapping", {"a": 5}), ans("n2", "remapping", {"b": 9}),
                ans("n3", "remapping", {"a": 5, "b": 9})]  # fmt: skip


# -- quiescing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "phase", "actions", "volumes", "failed"),
    [
        ([ans("n1", "quiescing", ["a"]), ans("n2", "quiescing", ["b"])], "quiescing", [], VOLS, {}),
        (
            [ans("n1", "quiescing", ["a"]), ans("n2", "quiescing", ["b"]), ans("n3", "quiescing")],
            "quiesced",
            [Remap(VOLS)],
            VOLS,
            {},
        ),
        # an answer under an older leader's token, or for another phase, does not count
        (
            [ans("n1", "quiescing", ["a"]), ans("n2", "quiescing", ["b"]), ans("n3", "quiescing", token=6)],
            "quiescing",
            [],
            VOLS,
            {},
        ),
        (
            [ans("n1", "quiescing", ["a"]), ans("n2", "quiescing", ["b"]), ans("n3", "resuming")],
            "quiescing",
            [],
            VOLS,
            {},
        ),
        # one volume its owner could not hold leaves the epoch; the node is no less a member
        (
            [
                ans("n1", "quiescing", failed={"a": "bdev_error_inject_error: -19"}),
                ans("n2", "quiescing", ["b"]),
                ans("n3", "quiescing"),
            ],
            "quiesced",
            [Remap(frozenset({"b"}))],
            {"b"},
            {"a": "n1: bdev_error_inject_error: -19"},
        ),
        # a node down is not waited for
        (
            [ans("n1", "quiescing", ["a"]), ans("n2", "quiescing", ["b"]), Down(frozenset({"n3"}), 0.2)],
            "quiesced",
            [Remap(VOLS)],
            VOLS,
            {},
        ),
        # deadline: a silent node is expelled, then the epoch goes on without it
        ([ans("n1", "quiescing", ["a"]), ans("n2", "quiescing", ["b"]), Tick(1.9)], "quiescing", [], VOLS, {}),
        (
            [ans("n1", "quiescing", ["a"]), ans("n2", "quiescing", ["b"]), Tick(2.0)],
            "quiesced",
            [Expel(frozenset({"n3"}), "quiescing"), Remap(VOLS)],
            VOLS,
            {},
        ),
        # a volume deleted meanwhile leaves the epoch
        (
            [
                Gone(frozenset({"b"}), 0.1),
                ans("n1", "quiescing", ["a"]),
                ans("n2", "quiescing"),
                ans("n3", "quiescing"),
            ],
            "quiesced",
            [Remap(frozenset({"a"}))],
            {"a"},
            {},
        ),
    ],
)
def test_quiescing(events: list[Event], phase: str, actions: list[Action], volumes: set[str],
                   failed: dict[str, str]) -> None:  # fmt: skip
    s, out = run(fresh(), events)
    assert (s.phase, out, set(s.volumes), dict(s.failed)) == (phase, actions, volumes, failed)


def test_a_quiesced_epoch_waits_only_for_its_mappings() -> None:
    s = quiesced()
    assert run(s, [Tick(100.0), ans("n1", "quiescing", ["a"]), Down(frozenset({"n1"}), 100.0)]) == (s, [])


def test_deadline_grows_with_the_volumes_a_node_answers_for() -> None:
    many = frozenset(f"v{i}" for i in range(300))
    s = begin(1, TOKEN, many, dict.fromkeys(many, "n1"), frozenset({"n1", "n2"}), now=0.0)
    assert s.deadline("n1", D) == pytest.approx(5.0)  # 2 s + 300 x 10 ms
    assert s.deadline("n2", D) == pytest.approx(2.0)
    s, out = step(s, Tick(4.0), D)
    assert out == [Expel(frozenset({"n2"}), "quiescing")] and s.phase == "quiescing"


# -- remapping -------------------------------------------------------------------------------------


def test_remapped_names_every_live_member_of_the_new_mappings() -> None:
    s = remapping()
    assert s.phase == "remapping" and s.remaps == 1
    assert dict(s.work) == {"n1": {"a"}, "n2": {"b"}, "n3": {"a", "b"}}
    assert dict(s.expected) == {"a": 5, "b": 9} and s.answered == {}


@pytest.mark.parametrize(
    ("events", "phase", "actions", "failed"),
    [
        (ALL_REMAPPED, "resuming", [Write()], {}),
        # an answer for an older generation of a mapping does not count
        ([*ALL_REMAPPED[:2], ans("n3", "remapping", {"a": 5, "b": 8})], "remapping", [], {}),
        # window 8: re-remapped inside the epoch: answers for the earlier mapping of b are too old,
        # those for a (unchanged) still count
        (
            [Stale(0.5), Remapped({"a": 5, "b": 10}, MEMBERS, 0.6), *ALL_REMAPPED],
            "remapping",
            [Remap(VOLS), Write()],
            {},
        ),
        (
            [
                Stale(0.5),
                Remapped({"a": 5, "b": 10}, MEMBERS, 0.6),
                *ALL_REMAPPED,
                ans("n2", "remapping", {"b": 10}),
                ans("n3", "remapping", {"a": 5, "b": 10}),
            ],
            "resuming",
            [Remap(VOLS), Write(), Write()],
            {},
        ),
        # per volume: n3 cannot apply b; b fails, n3 stays
        (
            [*ALL_REMAPPED[:2], ans("n3", "remapping", {"a": 5}, {"b": "leg_unreachable"})],
            "resuming",
            [Write()],
            {"b": "n3: leg_unreachable"},
        ),
        # answered in part by the deadline: the rest fails, the node is not expelled
        (
            [*ALL_REMAPPED[:2], ans("n3", "remapping", {"a": 5}), Tick(0.3 + 8.03)],
            "resuming",
            [Write()],
            {"b": "n3 did not apply mapping generation 9 within the remapping deadline"},
        ),
        # silent by the deadline: expelled
        ([*ALL_REMAPPED[:2], Tick(0.3 + 8.03)], "resuming", [Expel(frozenset({"n3"}), "remapping"), Write()], {}),
    ],
)
def test_remapping(events: list[Event], phase: str, actions: list[Action], failed: dict[str, str]) -> None:
    s, out = run(remapping(), events)
    assert (s.phase, out, dict(s.failed)) == (phase, actions, failed)


def test_stale_mappings_are_remapped_only_while_remapping() -> None:
    assert step(fresh(), Stale(0.1), D) == (fresh(), [])
    assert step(remapping(), Stale(0.5), D)[1] == [Remap(VOLS)]


def test_a_re_remap_keeps_its_phase_clock() -> None:
    s, _ = run(remapping(), [Stale(3.0), Remapped({"a": 6, "b": 9}, MEMBERS, 3.1)])
    assert (s.started, s.remaps, dict(s.expected)) == (0.3, 2, {"a": 6, "b": 9})


def test_hold_budget_caps_quiescing_plus_remapping() -> None:
    s, _ = run(fresh(), [ans("n1", "quiescing", ["a"]), ans("n2", "quiescing", ["b"]), ans("n3", "quiescing")])
    s, _ = step(s, Remapped({"a": 5, "b": 9}, MEMBERS, 15.0), D)  # the mappings took 15 s to write
    assert s.elapsed_held == 15.0
    assert s.deadline("n3", D) == pytest.approx(20.0)  # not 15 + 8.02: the budget is 20 s


# -- resuming and done -----------------------------------------------------------------------------


def test_resuming_then_done() -> None:
    s, _ = run(remapping(), ALL_REMAPPED)
    s, out = run(s, [ans("n1", "resuming", ["a"]), ans("n2", "resuming", ["b"])])
    assert (s.phase, out) == ("resuming", [])
    s, out = run(s, [ans("n3", "resuming", at=0.5)])
    assert (s.phase, out) == ("done", [Write(), Finished()])
    assert run(s, [Tick(99.0), ans("n1", "resuming")]) == (s, [])


def test_resume_silence_expels() -> None:
    s, _ = run(remapping(), [*ALL_REMAPPED])
    s, out = run(s, [ans("n1", "resuming", ["a"]), ans("n2", "resuming", ["b"]), Tick(s.deadline("n3", D))])
    assert (s.phase, out) == ("done", [Expel(frozenset({"n3"}), "resuming"), Write(), Finished()])
    assert s.expelled == {"n3"}


# -- takeover --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "actions"),
    [
        (fresh(), [Write()]),
        (quiesced(), [Write(), Remap(VOLS)]),
        (remapping(), [Write(), Remap(VOLS)]),
    ],
)
def test_a_new_leader_takes_over_under_its_token(state: State, actions: list[Action]) -> None:
    s, out = take_over(state, 8, now=50.0)
    assert (s.token, s.started, s.answered, out) == (8, 50.0, {}, actions)
    # answers to the old leader do not count any more
    s2, _ = step(s, ans("n1", s.phase, ["a"], token=TOKEN), D)
    assert s2.answered == {}


def test_answer_parses_an_ack_record() -> None:
    record = {"kind": "ack", "node": "n3", "phase": "remapping", "leader_token": 7, "status": "ok",
              "volumes": ["a", "b"], "applied": {"a": 5, "b": 9}, "failed": {"c": "no_source"}}  # fmt: skip
    assert Answer.of(record) == Answer("n3", "remapping", 7, {"a": 5, "b": 9}, {"c": "no_source"})
