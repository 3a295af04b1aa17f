"""Steps: the SPDK calls a plan is made of, in stages.

A plan is a list of :class:`Step` values; the executor sends every step of a stage at once (one
SPDK poller tick for the lot) and moves to the next stage when all have answered. Steps are
idempotent: each names the SPDK errors that mean "already so" (``exists``/``gone``), which the
executor counts as success, so a plan interrupted anywhere can simply be planned and run again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Stage(enum.IntEnum):
    """Order of work on a node: tear down top-down, then build bottom-up."""

    UNEXPORT = 0  # subsystems nobody wants
    UNHOLD = 1  # error bdevs of volumes gone from this node
    DISASSEMBLE = 2  # raids gone, members dropped
    DETACH = 3  # remote legs and placeholders gone
    DELETE = 4  # lvols of legs no volume has
    CREATE = 5  # lvols, subsystems, error bdevs (an error bdev may wait for its raid)
    WIRE = 6  # namespaces of leg exports, listeners, hosts
    ATTACH = 7  # remote legs, placeholders
    ASSEMBLE = 8  # raids
    TRIM = 9  # placeholders out of new raids
    GROW = 10  # rebuild targets into raids
    HOLD = 11  # hold host I/O (before anything is exported)
    SERVE = 12  # volume namespaces
    RELEASE = 13  # let held I/O flow


#: what an SPDK error means for an idempotent step
EXISTS = "exists"
GONE = "gone"


@dataclass(frozen=True)
class Step:
    stage: Stage
    method: str
    params: Mapping[str, Any]
    volume: str = ""
    why: str = ""
    done_if: frozenset[str] = frozenset()

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage.name.lower(), "method": self.method, "params": dict(self.params)}
        if self.volume:
            out["volume"] = self.volume
        return out


@dataclass(frozen=True)
class Finding:
    """Something the node cannot fix by itself and reports to the master."""

    volume: str
    kind: str
    leg: str = ""
    detail: str = ""

    def json(self) -> dict[str, Any]:
        out = {"volume": self.volume, "kind": self.kind}
        if self.leg:
            out["leg"] = self.leg
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    findings: tuple[Finding, ...] = field(default=())

    def stages(self) -> list[tuple[Stage, list[Step]]]:
        """The steps grouped by stage, in order."""
        out: dict[Stage, list[Step]] = {}
        for s in sorted(self.steps, key=lambda s: s.stage):
            out.setdefault(s.stage, []).append(s)
        return list(out.items())

    def __bool__(self) -> bool:
        return bool(self.steps)


def plan_of(steps: Iterable[Step], findings: Iterable[Finding]) -> Plan:
    return Plan(tuple(steps), tuple(findings))
