"""Placement: which devices count, how much room each has (thick and thin), and how a device is chosen."""

from __future__ import annotations

import pytest

from spdkvirt.model.placement import THIN_OVERCOMMIT, Capacity, NoSpace
from spdkvirt.model.records import Device, Volume
from tests.unit.model.builders import GIB, device, leg, volume


def capacity(devices: list[Device], *volumes: Volume, nodes: tuple[str, ...] = ("n1", "n2", "n3")) -> Capacity:
    return Capacity.of(devices, volumes, nodes)


def test_only_usable_devices_on_usable_nodes_count() -> None:
    devs = [
        device("n1", "d1"),
        device("n1", "d2", state="failed"),
        device("n1", "d3", lvstore=False),
        device("n2", "d1", state="maintenance"),
        device("n9", "d1"),
    ]
    assert set(capacity(devs).devices) == {("n1", "d1")}


def test_committed_bytes_are_counted_per_device() -> None:
    devs = [device("n1", "d1"), device("n2", "d1")]
    a = volume("a", [leg("n1", "d1"), leg("n2", "d1")], size=3 * GIB)
    b = volume("b", [leg("n1", "d1"), leg("n9", "d1")], size=2 * GIB)
    assert capacity(devs, a, b).committed == {("n1", "d1"): 5 * GIB, ("n2", "d1"): 3 * GIB}


@pytest.mark.parametrize(
    ("size", "free", "committed", "thin", "room"),
    [
        pytest.param(10 * GIB, 0, 0, True, THIN_OVERCOMMIT * 10 * GIB, id="thin-overcommits"),
        pytest.param(10 * GIB, 0, 0, False, 10 * GIB, id="thick-up-to-size"),
        pytest.param(10 * GIB, 4 * GIB, 0, False, 4 * GIB, id="thick-up-to-free-bytes"),
        pytest.param(10 * GIB, 4 * GIB, 0, True, THIN_OVERCOMMIT * 10 * GIB, id="thin-ignores-free-bytes"),
        pytest.param(10 * GIB, 0, 30 * GIB, True, 10 * GIB, id="thin-minus-committed"),
        pytest.param(10 * GIB, 0, 30 * GIB, False, -20 * GIB, id="thick-after-thin-overcommit"),
        pytest.param(10 * GIB, 6 * GIB, 3 * GIB, False, 6 * GIB, id="thick-free-bytes-after-commits"),
    ],
)
def test_room(size: int, free: int, committed: int, thin: bool, room: int) -> None:
    c = capacity([device("n1", "d1", size=size, free=free)])
    c.committed[("n1", "d1")] = committed
    assert c.room(("n1", "d1"), thin) == room


@pytest.mark.parametrize("thin", [True, False], ids=["thin", "thick"])
def test_no_space(thin: bool) -> None:
    c = capacity([device("n1", "d1", size=10 * GIB)])
    fits = 10 * GIB * (THIN_OVERCOMMIT if thin else 1)
    assert c.choose(fits, thin).key == ("n1", "d1")
    with pytest.raises(NoSpace):
        c.choose(1, thin)


def test_thin_legs_still_fit_where_thick_ones_do_not() -> None:
    c = capacity([device("n1", "d1", size=10 * GIB)])
    c.choose(8 * GIB, True)
    with pytest.raises(NoSpace):
        c.choose(4 * GIB, False)
    assert c.choose(4 * GIB, True).key == ("n1", "d1")


def test_choice_commits_the_bytes() -> None:
    c = capacity([device("n1", "d1")])
    c.choose(GIB, True)
    c.choose(2 * GIB, True)
    assert c.committed[("n1", "d1")] == 3 * GIB


def test_least_loaded_device_first_then_by_name() -> None:
    c = capacity([device("n2", "d1", size=10 * GIB), device("n1", "d2", size=100 * GIB), device("n1", "d1")])
    assert [c.choose(GIB, True).key for _ in range(4)] == [("n1", "d1"), ("n1", "d2"), ("n2", "d1"), ("n1", "d1")]


def test_load_is_relative_to_device_size() -> None:
    c = capacity([device("n1", "d1", size=10 * GIB), device("n2", "d1", size=100 * GIB)])
    c.committed.update({("n1", "d1"): 2 * GIB, ("n2", "d1"): 10 * GIB})
    assert c.choose(GIB, True).key == ("n2", "d1")


def test_spreads_over_nodes() -> None:
    devs = [device(n, d) for n in ("n1", "n2", "n3") for d in ("d1", "d2")]
    c = capacity(devs)
    used: set[str] = set()
    for _ in range(3):
        used.add(c.choose(GIB, True, avoid_nodes=used).node)
    assert used == {"n1", "n2", "n3"}


def test_avoided_nodes_are_a_preference() -> None:
    c = capacity([device("n1", "d1"), device("n1", "d2")])
    assert c.choose(GIB, True, avoid_nodes={"n1"}).node == "n1"


def test_avoided_devices_are_never_chosen() -> None:
    c = capacity([device("n1", "d1"), device("n2", "d1", size=GIB)])
    with pytest.raises(NoSpace):
        c.choose(2 * GIB, False, avoid_devices={("n1", "d1")}, avoid_nodes={"n2"})
    assert c.committed == {("n1", "d1"): 0, ("n2", "d1"): 0}


def test_only_nodes() -> None:
    c = capacity([device("n1", "d1"), device("n2", "d1"), device("n3", "d1")])
    assert c.choose(GIB, True, only_nodes={"n3"}).key == ("n3", "d1")
    with pytest.raises(NoSpace):
        c.choose(GIB, True, only_nodes={"n7"})
