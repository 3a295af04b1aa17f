"""The table of RPC methods the simulator serves, filled by each module's @rpc decorators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .target import Target

Handler = Callable[["Target", Any], Awaitable[Any]]
Examiner = Callable[["Target", Any], Awaitable[None]]

METHODS: dict[str, Handler] = {}
# (order, name, examine function): raid first, then lvol, as SPDK's examine order has it.
EXAMINERS: list[tuple[int, str, Examiner]] = []


def rpc(name: str) -> Callable[[Handler], Handler]:
    """Register an async handler (target, params) -> result for an SPDK method name."""

    def deco(fn: Handler) -> Handler:
        assert name not in METHODS, f"duplicate handler for {name}"
        METHODS[name] = fn
        return fn

    return deco


def examiner(order: int, name: str) -> Callable[[Examiner], Examiner]:
    """Register an examine callback run on every new bdev (lower order runs first)."""

    def deco(fn: Examiner) -> Examiner:
        EXAMINERS.append((order, name, fn))
        EXAMINERS.sort(key=lambda e: e[0])
        return fn

    return deco
