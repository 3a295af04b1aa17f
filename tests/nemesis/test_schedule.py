"""Fault schedules: a seed always gives the same faults, within the rules."""

from __future__ import annotations

import pytest

from tests.nemesis.schedule import CLUSTER_WIDE, KINDS, NAMESPACED, schedule
from tests.support.steps import POINTS

NODES = ("n1", "n2", "n3")
DEVICES = tuple(f"{n}/{n}d{k}" for n in NODES for k in (1, 2))


@pytest.mark.parametrize("seed", range(1, 40))
def test_a_seed_reproduces_and_keeps_the_rules(seed: int) -> None:
    faults = schedule(seed, NODES, DEVICES, faults=6, span=8.0)
    assert faults == schedule(seed, NODES, DEVICES, faults=6, span=8.0)
    assert list(faults) == sorted(faults, key=lambda f: f.at)
    pulled = [f"{f.node}/{f.device}" for f in faults if f.kind == "device"]
    assert len(pulled) == len(set(pulled)) and set(pulled) <= set(DEVICES)
    node_faults = [f for f in faults if f.kind not in (*CLUSTER_WIDE, "device")]
    etcd = [f for f in faults if f.kind == "etcd"]
    for group in (node_faults, etcd):
        for f in group:
            during = [g for g in group if g is not f and g.at <= f.at + f.duration and f.at <= g.at + g.duration]
            assert not during, f"{f} overlaps {during}"
    assert all(f.kind in KINDS and 0 <= f.at <= 8.0 for f in faults)
    wide = schedule(seed, NODES, DEVICES, faults=6, kinds=NAMESPACED)
    assert all(f.kind in NAMESPACED for f in wide)
    assert all(f.node in ("etcd0", "etcd1", "etcd2") for f in wide if f.kind == "etcd")


def test_seeds_differ() -> None:
    assert len({schedule(s, NODES, DEVICES) for s in range(1, 30)}) > 25


def test_every_kind_comes_up() -> None:
    kinds = {f.kind for s in range(1, 60) for f in schedule(s, NODES, DEVICES)}
    assert kinds == set(KINDS)
    kinds = {f.kind for s in range(1, 90) for f in schedule(s, NODES, DEVICES, kinds=NAMESPACED)}
    assert kinds == set(NAMESPACED)


def test_kinds_can_be_chosen() -> None:
    assert {f.kind for s in range(1, 20) for f in schedule(s, NODES, DEVICES, kinds=("device",))} == {"device"}


def test_controllers_are_killed_at_every_step() -> None:
    faults = [f for s in range(1, 200) for f in schedule(s, NODES, DEVICES)]
    assert {f.step for f in faults if f.kind == "controller"} == {"", *POINTS}
    assert all(not f.step for f in faults if f.kind != "controller")
