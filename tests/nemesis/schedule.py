"""Seeded fault schedules: which fault hits what, and when.

``schedule(seed, nodes, devices)`` is pure: the same seed always gives the same faults, so a
failing seed reproduces. A fault starts ``at`` seconds into the run and, for those that heal
(a killed SPDK, agent or controller comes back), lasts ``duration`` seconds. A pulled device
stays failed. Faults are spread so that at most ``overlap`` node faults are under way at once.
A controller is killed at ``at`` or, where its fault names a ``step``, at the first protocol step
of that kind from ``at`` on (an epoch's phase written, or answered by every node it names).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tests.support.steps import POINTS

#: what the nemesis can do anywhere: pull a device, SIGKILL a node's SPDK (its agent runs on),
#: kill a node's agent (its lease runs out), kill the controller, slow a node's SPDK down
KINDS = ("device", "spdk", "agent", "controller", "slow")
#: and with a node per network namespace and etcd of 3 members: cut a node off the network, cut it
#: from etcd only, cut an owner from the node of one of its legs, kill an etcd member
NAMESPACED = (*KINDS, "partition", "etcd_cut", "leg_cut", "etcd")
#: faults of the whole cluster, not of one node
CLUSTER_WIDE = ("controller", "etcd")


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str
    node: str = ""
    device: str = ""
    duration: float = 0.0
    step: str = ""  # controller faults: kill at this protocol step (tests/support/steps.py), "" at once

    def __str__(self) -> str:
        where = "/".join(x for x in (self.node, self.device) if x)
        step = f" at {self.step}" if self.step else ""
        return f"{self.at:.1f}s {self.kind}{' ' + where if where else ''}{step} for {self.duration:.1f}s"


def schedule(
    seed: int,
    nodes: Sequence[str],
    devices: Sequence[str],
    *,
    faults: int = 3,
    span: float = 8.0,
    overlap: int = 1,
    kinds: Sequence[str] = KINDS,
    etcd_members: int = 3,
) -> tuple[Fault, ...]:
    """``faults`` faults within ``span`` seconds, in time order. ``devices``: "node/device" ids;
    each is pulled at most once. At most one etcd member is down at a time (its quorum stays)."""
    rng = random.Random(seed)
    out: list[Fault] = []
    pulled: set[str] = set()
    busy: list[tuple[float, float]] = []  # node faults under way: (start, end)
    etcd_down: list[tuple[float, float]] = []
    for _ in range(faults):
        for _attempt in range(20):
            kind = rng.choice(list(kinds))
            at = round(rng.uniform(0.0, span), 1)
            duration = round(rng.uniform(0.5, 3.0), 1)
            if kind == "device":
                left = [d for d in devices if d not in pulled]
                if not left:
                    continue
                dev = rng.choice(left)
                pulled.add(dev)
                node, device = dev.split("/", 1)
                out.append(Fault(at, kind, node, device))
                break
            if kind == "controller":
                out.append(Fault(at, kind, duration=duration, step=rng.choice(("", *POINTS))))
                break
            if kind == "etcd":
                if any(s <= at + duration and at <= e for s, e in etcd_down):
                    continue
                etcd_down.append((at, at + duration))
                out.append(Fault(at, kind, f"etcd{rng.randrange(etcd_members)}", duration=duration))
                break
            if sum(1 for s, e in busy if s <= at + duration and at <= e) >= overlap:
                continue
            busy.append((at, at + duration))
            out.append(Fault(at, kind, rng.choice(list(nodes)), duration=duration))
            break
    return tuple(sorted(out, key=lambda f: (f.at, f.kind, f.node, f.device)))
