"""The epoch protocol as a pure state machine: ``step(state, event) -> (state, actions)``.

An epoch goes quiescing -> quiesced (new mappings being written) -> remapping -> resuming -> done.
In each phase the machine waits for the acknowledgements of the nodes it names, each up to its
own deadline (a base per phase plus a little per volume the node answers for, and never past the
hold budget: host I/O held longer than Linux's 30 s I/O timeout fails). The master only executes
what the machine asks (etcd-io/raft's Step/Ready): write the epoch record, write new mappings,
declare nodes down.

Acknowledgements are per volume. A node answers a phase with the volumes it did and the volumes it
could not do (and why); a volume that fails leaves the epoch (kept as it was in quiescing, noted
afterwards), and the node stays a member. A node that answers nothing by its deadline is declared
down: *expelled*, which the next remap treats like a failed node. In remapping an answer counts
only for the mapping generations of the latest remap: after a re-remap inside the epoch, answers
for the earlier mappings do not count.

Four things keep a stale actor out, each under its own name: the leader *token* (every write of a
leader is guarded by it; nodes ignore instructions under an older one), out-of-band *fencing* of a
node before its volumes move (:mod:`spdkvirt.controller.fencing`), nodes *expelled* in an epoch
(here), and an agent *isolating* itself when its lease is at risk (:mod:`spdkvirt.agent.agent`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

PHASES = ("quiescing", "quiesced", "remapping", "resuming", "done")


@dataclass(frozen=True)
class Deadlines:
    """Seconds a node has to answer each phase: ``base + per_volume * volumes it answers for``.
    Quiescing and remapping together never exceed ``hold_budget`` (host I/O is held then)."""

    quiesce: float = 2.0
    remap: float = 8.0
    resume: float = 5.0
    per_volume: float = 0.004
    hold_budget: float = 20.0

    def of(self, phase: str, volumes: int) -> float:
        base = {"quiescing": self.quiesce, "remapping": self.remap}.get(phase, self.resume)
        return base + self.per_volume * volumes


@dataclass(frozen=True)
class Answer:
    """A node's acknowledgement of a phase (an ack record)."""

    node: str
    phase: str
    token: int
    done: Mapping[str, int] = field(default_factory=dict)  # volume -> mapping generation it holds now
    failed: Mapping[str, str] = field(default_factory=dict)  # volume -> why not

    @classmethod
    def of(cls, r: Mapping[str, Any]) -> Answer:
        applied = r.get("applied") or {}
        done = {v: int(applied.get(v, 0)) for v in r.get("volumes", ())}
        return cls(r["node"], r["phase"], int(r["leader_token"]), done, dict(r.get("failed") or {}))


@dataclass(frozen=True)
class State:
    number: int
    token: int
    phase: str
    volumes: frozenset[str]  # still in the epoch
    work: Mapping[str, frozenset[str]]  # node -> volumes it answers for in this phase
    started: float  # when this phase started (the executor's clock)
    elapsed_held: float = 0.0  # seconds spent holding in phases before this one
    expected: Mapping[str, int] = field(default_factory=dict)  # volume -> generation of the latest remap
    answered: Mapping[str, Answer] = field(default_factory=dict)  # node -> its answer to this phase
    down: frozenset[str] = frozenset()  # nodes not waited for: down, expelled
    expelled: frozenset[str] = frozenset()
    failed: Mapping[str, str] = field(default_factory=dict)  # volume -> why it left the epoch
    remaps: int = 0  # how many times this epoch wrote mappings

    def waiting(self) -> frozenset[str]:
        """Nodes whose answer to this phase is still missing."""
        return frozenset(n for n in self.work if n not in self.down and not self.covered(n))

    def covered(self, node: str) -> bool:
        answer = self.answered.get(node)
        if answer is None:
            return False
        if self.phase != "remapping":
            return True
        return all(self._applied(answer, v) for v in self.work[node] & self.volumes)

    def _applied(self, answer: Answer, volume: str) -> bool:
        if volume in answer.failed or volume in self.failed:
            return True
        return answer.done.get(volume, -1) >= self.expected.get(volume, 0)

    def deadline(self, node: str, d: Deadlines) -> float:
        """When ``node`` must have answered this phase."""
        span = d.of(self.phase, len(self.work.get(node, ())))
        if self.phase in ("quiescing", "remapping"):
            span = min(span, max(0.0, d.hold_budget - self.elapsed_held))
        return self.started + span

    def next_deadline(self, d: Deadlines) -> float | None:
        waiting = self.waiting()
        return min((self.deadline(n, d) for n in waiting), default=None)


# ---- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class Answered:
    answer: Answer
    now: float


@dataclass(frozen=True)
class Down:
    """Nodes that are down now (lease expired, SPDK lost): their answers are not waited for."""

    nodes: frozenset[str]
    now: float


@dataclass(frozen=True)
class Remapped:
    """The executor wrote the mappings the machine asked for (:class:`Remap`)."""

    generations: Mapping[str, int]  # volume -> generation of its mapping now (written or already current)
    members: Mapping[str, frozenset[str]]  # volume -> live nodes of its new mapping
    now: float


@dataclass(frozen=True)
class Stale:
    """While remapping, a mapping of the epoch must change again (a device or node failed meanwhile)."""

    now: float


@dataclass(frozen=True)
class Gone:
    """Volumes of the epoch that no longer exist (deleted meanwhile)."""

    volumes: frozenset[str]
    now: float


Event = Tick | Answered | Down | Remapped | Stale | Gone


# ---- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """Persist the epoch (its phase and what happened in it)."""


@dataclass(frozen=True)
class Remap:
    """Fence moved owners out of band, write the new mappings of ``volumes``, answer :class:`Remapped`."""

    volumes: frozenset[str]


@dataclass(frozen=True)
class Expel:
    """Declare ``nodes`` down: they missed a deadline of this epoch."""

    nodes: frozenset[str]
    phase: str


@dataclass(frozen=True)
class Finished:
    """The epoch is done: drop its acknowledgements."""


Action = Write | Remap | Expel | Finished


# ---- the machine ------------------------------------------------------------------------------


def begin(number: int, token: int, volumes: frozenset[str], owners: Mapping[str, str],
          nodes: frozenset[str], now: float) -> State:  # fmt: skip
    """A new epoch in quiescing: every node named answers; owners answer for the volumes they hold."""
    return State(number, token, "quiescing", volumes, _work(volumes, owners, nodes), now)


def _work(volumes: frozenset[str], owners: Mapping[str, str], nodes: frozenset[str]) -> dict[str, frozenset[str]]:
    return {n: frozenset(v for v in volumes if owners.get(v) == n) for n in nodes}


def take_over(state: State, token: int, now: float) -> tuple[State, list[Action]]:
    """A new leader continues an open epoch under its own token: answers given to the old leader
    do not count (nodes answer again); in remapping the mappings are written again first (the old
    leader may have written only part of them)."""
    nxt = replace(state, token=token, started=now, answered={})
    actions: list[Action] = [Write()]
    if state.phase in ("quiesced", "remapping"):
        actions.append(Remap(state.volumes))
    return nxt, actions


def step(state: State, event: Event, d: Deadlines) -> tuple[State, list[Action]]:
    """Apply one event; returns the next state and what the executor must do, in order."""
    if state.phase == "done":
        return state, []
    if state.phase == "quiesced" and not isinstance(event, Remapped):
        return state, []  # held, waiting for the mappings to be written
    if isinstance(event, Answered):
        a = event.answer
        if a.token != state.token or a.phase != state.phase or a.node not in state.work:
            return state, []  # an older leader's, an earlier phase's, or a stranger's
        state = replace(state, answered={**state.answered, a.node: a})
    elif isinstance(event, Down):
        fresh = event.nodes - state.down
        if not fresh:
            return _advance(state, event.now, d)
        state = replace(state, down=state.down | fresh)
    elif isinstance(event, Gone):
        state = replace(state, volumes=state.volumes - event.volumes)
    elif isinstance(event, Stale):
        if state.phase != "remapping":
            return state, []  # quiescing remaps at its end anyway; resuming is past it
        return state, [Remap(state.volumes)]
    elif isinstance(event, Remapped):
        return _remapped(state, event)
    return _advance(state, event.now, d)


def _remapped(state: State, event: Remapped) -> tuple[State, list[Action]]:
    """New mappings are written: (again) remapping, every live node of the new mappings answering
    for the generations just written. Answers already given still count for the mappings that did
    not change; for the others they are too old."""
    again = state.phase == "remapping"
    work: dict[str, set[str]] = {n: set() for n in state.work if n not in state.down}
    for volume in state.volumes:
        for node in event.members.get(volume, ()):
            if node not in state.down:
                work.setdefault(node, set()).add(volume)
    expected = {v: g for v, g in event.generations.items() if v in state.volumes}
    nxt = replace(
        state,
        phase="remapping",
        work={n: frozenset(v) for n, v in work.items()},
        expected=expected,
        answered=state.answered if again else {},
        started=state.started if again else event.now,
        elapsed_held=state.elapsed_held if again else state.elapsed_held + (event.now - state.started),
        remaps=state.remaps + 1,
    )
    return nxt, [Write()]


def _advance(state: State, now: float, d: Deadlines) -> tuple[State, list[Action]]:
    """Expel nodes past their deadline; when nobody is waited for, fold the answers in and move on."""
    actions: list[Action] = []
    late = frozenset(n for n in state.waiting() if now >= state.deadline(n, d))
    partial = frozenset(n for n in late if n in state.answered)  # answered, but not for everything
    silent = late - partial
    if partial:  # alive and answering: what it did not do fails, the node stays
        failed = dict(state.failed)
        for n in sorted(partial):
            for v in sorted(state.work[n] & state.volumes):
                if not state._applied(state.answered[n], v):
                    failed.setdefault(v, f"{n} did not apply mapping generation {state.expected.get(v, 0)} "
                                         f"within the {state.phase} deadline")  # fmt: skip
        state = replace(state, failed=failed)
    if silent:
        state = replace(state, expelled=state.expelled | silent, down=state.down | silent)
        actions.append(Expel(silent, state.phase))
    if state.waiting():
        return state, actions
    return _next_phase(state, now, actions)


def _next_phase(state: State, now: float, actions: list[Action]) -> tuple[State, list[Action]]:
    failed = dict(state.failed)
    for a in state.answered.values():
        for v, why in a.failed.items():
            if v in state.volumes:
                failed.setdefault(v, f"{a.node}: {why}")
    if state.phase == "quiescing":
        # a volume its owner could not hold keeps its mapping: it leaves the epoch, retried later
        keep = state.volumes - failed.keys()
        nxt = replace(state, phase="quiesced", volumes=keep, failed=failed)
        return nxt, [*actions, Remap(keep)]
    if state.phase == "remapping":
        nxt = replace(state, phase="resuming", failed=failed, answered={}, started=now,
                      elapsed_held=state.elapsed_held + (now - state.started))  # fmt: skip
        return nxt, [*actions, Write()]
    nxt = replace(state, phase="done", failed=failed, answered={}, started=now)
    return nxt, [*actions, Write(), Finished()]
