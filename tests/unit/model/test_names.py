"""The names spdkvirt gives its SPDK objects: they parse back, and identities are fixed per incarnation."""

from __future__ import annotations

import uuid

import pytest

from spdkvirt.model import names
from spdkvirt.model.plan import LEG_ID
from spdkvirt.model.remap import leg_id
from tests.unit.model.builders import volume

VOLUME_UUID = "3f1d2c4b-5a69-4e7d-8c1b-2a3b4c5d6e01"


@pytest.mark.parametrize(("leg", "incarnation"), [("3f1d2c4b5a69.1", 1), ("3f1d2c4b5a69.12", 7), ("a:b", 2)])
def test_leg_nqn_parses_back(leg: str, incarnation: int) -> None:
    nqn = names.leg_nqn(leg, incarnation)
    assert nqn.startswith(names.LEG_NQN_PREFIX)
    assert names.leg_of_nqn(nqn) == (leg, incarnation)


@pytest.mark.parametrize(
    "nqn",
    [
        pytest.param(names.volume_nqn("v1"), id="volume"),
        pytest.param("nqn.2016-06.io.spdk:cnode1", id="foreign"),
        pytest.param(names.LEG_NQN_PREFIX + "3f1d2c4b5a69.1", id="no-incarnation"),
        pytest.param(names.LEG_NQN_PREFIX + "3f1d2c4b5a69.1:x", id="bad-incarnation"),
        pytest.param(names.LEG_NQN_PREFIX + ":1", id="no-leg"),
    ],
)
def test_other_nqns_are_not_legs(nqn: str) -> None:
    assert names.leg_of_nqn(nqn) is None


def test_raid_and_hold_names_parse_back() -> None:
    assert names.raid("v1") == "vr-v1"
    assert names.hold("v1") == "EE_vr-v1"
    assert names.volume_of_raid(names.raid("v1")) == "v1"
    assert names.volume_of_hold(names.hold("v1")) == "v1"
    assert names.volume_of_raid("r1") is None
    assert names.volume_of_hold("EE_Malloc0") is None
    assert names.volume_of_hold("vr-v1") is None


def test_remote_leg_names() -> None:
    assert names.remote_controller("3f1d2c4b5a69.1", 2) == "rl-3f1d2c4b5a69.1-2"
    assert names.remote_bdev("3f1d2c4b5a69.1", 2) == "rl-3f1d2c4b5a69.1-2n1"


def test_leg_identity_is_fixed_per_incarnation() -> None:
    one = names.leg_identity(VOLUME_UUID, "3f1d2c4b5a69.1", 1)
    assert one == names.leg_identity(VOLUME_UUID, "3f1d2c4b5a69.1", 1)
    assert uuid.UUID(one).version == 4
    others = {
        names.leg_identity(VOLUME_UUID, "3f1d2c4b5a69.1", 2),
        names.leg_identity(VOLUME_UUID, "3f1d2c4b5a69.2", 1),
        names.leg_identity(str(uuid.UUID(int=1)), "3f1d2c4b5a69.1", 1),
    }
    assert one not in others
    assert len(others) == 3


def test_nguid_is_the_uuid_in_upper_hex() -> None:
    assert names.nguid("29738dee-533c-44b7-a14c-e07dc7c4b0b1") == "29738DEE533C44B7A14CE07DC7C4B0B1"


def test_leg_ids_look_like_leg_ids() -> None:
    v = volume("v1")
    assert all(LEG_ID.match(leg_id(v, serial)) for serial in (1, 2, 99))
    assert names.lvol_alias(names.lvstore("d1"), leg_id(v, 1)) == f"lvs_d1/{leg_id(v, 1)}"
