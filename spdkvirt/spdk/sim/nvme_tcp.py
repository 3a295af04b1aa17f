"""The TCP wire between simulators: NVMe-oF listeners serving namespaces, and the initiator side.

Interface used by nvmf.py (the target side of NVMe-oF):
- `await listen(target, traddr, trsvcid)`: start accepting connections on that address (first listener
  of any subsystem there); raises RpcError if the address cannot be bound.
- `await unlisten(target, traddr, trsvcid)`: stop accepting on that address (when no subsystem
  listens there any more); existing connections to it are dropped.
- `subsystem_changed(target, nqn)`: a subsystem's namespaces, hosts, listeners or ANA states changed;
  connected initiators re-check what they may still see.
- `controllers(target, nqn)` / `qpairs(target, nqn)`: connected hosts, in nvmf_subsystem_get_controllers /
  nvmf_subsystem_get_qpairs shape.
"""

from __future__ import annotations

from typing import Any

from .target import Target


async def listen(target: Target, traddr: str, trsvcid: str) -> None:
    return None


async def unlisten(target: Target, traddr: str, trsvcid: str) -> None:
    return None


def subsystem_changed(target: Target, nqn: str) -> None:
    return None


def controllers(target: Target, nqn: str) -> list[dict[str, Any]]:
    return []


def qpairs(target: Target, nqn: str) -> list[dict[str, Any]]:
    return []
