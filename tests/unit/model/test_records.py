"""Records as values: each reads its store form back, writes a form its schema accepts, and keeps
fields it does not know."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from spdkvirt.model.records import Device, Epoch, Node, Volume
from spdkvirt.store import keys
from spdkvirt.store.schema import schemas
from tests.unit.model.builders import GIB, device, export, leg, node, volume


def valid(record: dict[str, Any]) -> dict[str, Any]:
    schemas().validate(keys.for_record(record), record)
    return record


VOLUMES = [
    pytest.param(volume("v1", [leg("n1", "d1", "new"), leg("n2", "d1", "new")]), id="creating"),
    pytest.param(volume("v1", [leg("n1", "d1"), leg("n2", "d2", "rebuilding", inc=3, boot=2)]), id="degraded"),
    pytest.param(volume("v1", [leg("n1", "d1")], thin=False), id="concat-thick"),
]


@pytest.mark.parametrize("v", VOLUMES)
def test_volume_round_trip(v: Volume) -> None:
    record = valid(v.record())
    assert Volume.of(record) == v
    assert record["raid_level"] == v.raid_level


def test_volume_keeps_fields_it_does_not_know() -> None:
    record = volume("v1", [leg("n1", "d1")]).record()
    record["labels"] = {"team": "a"}
    v = Volume.of(valid(record))
    assert replace(v, generation=2).record()["labels"] == {"team": "a"}


def test_volume_derived_values() -> None:
    v = volume("v1", [leg("n1", "d1"), leg("n2", "d1", "rebuilding")], owner="n3", size=GIB + 1)
    assert v.size_mib == 1025
    assert v.nodes() == {"n1", "n2", "n3"}
    assert [x.holds_data for x in v.legs] == [True, False]
    assert v.leg(v.legs[1].leg_id) is v.legs[1]
    assert v.leg("nope") is None
    assert volume("v1", [leg("n1", "d1")]).raid_level == "concat"


def test_node_and_device_round_trip() -> None:
    n = node("n1", boot=3)
    assert Node.of(valid(n.record())) == n
    for d in (device("n1", "d1", free=GIB), device("n1", "d2", lvstore=False, state="failed")):
        assert Device.of(valid(d.record())) == d
    assert device("n1", "d1").usable
    assert not device("n1", "d1", state="failed").usable
    assert not device("n1", "d1", lvstore=False).usable


def test_export_reads_its_nvmf_part() -> None:
    v = volume("v1", [leg("n1", "d1")])
    e = export(v, hosts=["nqn.2014-08.org.nvmexpress:uuid:1"], allow_any_host=False)
    valid(dict(e.record_))
    assert (e.volume, e.protocol, e.hosts, e.allow_any_host) == (
        "v1",
        "nvmf",
        ("nqn.2014-08.org.nvmexpress:uuid:1",),
        False,
    )


@pytest.mark.parametrize(
    ("phase", "holds"),
    [
        ("proposed", False),
        ("quiescing", True),
        ("quiesced", True),
        ("remapping", True),
        ("resuming", False),
        ("done", False),
    ],
)
def test_epoch_round_trip(phase: str, holds: bool) -> None:
    e = Epoch(7, "device_failed", frozenset({"v1", "v2"}), frozenset({"n1"}), 3, phase, {"n1": phase}, "lost d1")
    assert Epoch.of(valid(e.record())) == e
    assert e.holds is holds
