"""Runs a plan against SPDK: one pipelined batch per stage.

Every step of a stage is written at once (SPDK answers the lot in one poller tick). A step that
fails stops the later steps of its volume in this run; the next observation and plan pick up from
whatever was done. An error the step names as "already so" (exists / gone) counts as done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spdkvirt.model.steps import EXISTS, GONE, Plan, Step
from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import SpdkError, SpdkExists, SpdkNotFound, SpdkRpcError


@dataclass(frozen=True)
class Outcome:
    done: tuple[Step, ...] = ()
    failed: tuple[tuple[Step, SpdkError], ...] = ()

    def failed_volumes(self) -> frozenset[str]:
        return frozenset(s.volume for s, _ in self.failed)

    def errors(self) -> dict[str, str]:
        """Per volume, the first step that failed and how."""
        out: dict[str, str] = {}
        for s, e in self.failed:
            out.setdefault(s.volume, f"{s.method}: {e}"[:1000])
        return out

    def summary(self) -> str:
        return "; ".join(f"{s.method} ({s.volume or '-'}): {e}" for s, e in self.failed[:5])


def already(step: Step, error: SpdkError) -> bool:
    """Whether an error means the step's effect is already in place."""
    return (EXISTS in step.done_if and isinstance(error, SpdkExists)) or (
        GONE in step.done_if and isinstance(error, SpdkNotFound)
    )


async def execute(
    client: SpdkClient, plan: Plan, *, deadline: float | None = None, stop: Callable[[], bool] | None = None
) -> Outcome:
    """Run ``plan`` stage by stage, each stage within ``deadline`` seconds; ``stop``: checked between
    stages, ends the run early (what was sent completes; the rest is planned again later).
    Transport errors propagate: the node's SPDK is not reachable."""
    done: list[Step] = []
    failed: list[tuple[Step, SpdkError]] = []
    broken: set[str] = set()
    for _, steps in plan.stages():
        if stop is not None and stop():
            break
        runnable = [s for s in steps if not (s.volume and s.volume in broken)]
        results = await client.gather(
            [(s.method, dict(s.params)) for s in runnable], timeout=deadline, return_exceptions=True
        )
        for step, result in zip(runnable, results, strict=True):
            if isinstance(result, SpdkRpcError) and not already(step, result):
                failed.append((step, result))
                if step.volume:
                    broken.add(step.volume)
            elif isinstance(result, SpdkError) and not isinstance(result, SpdkRpcError):
                raise result
            else:
                done.append(step)
    return Outcome(tuple(done), tuple(failed))
