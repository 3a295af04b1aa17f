"""Record schemas: one per kind, Draft 2020-12, found wherever spdkvirt is installed, built once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.store import keys
from spdkvirt.store.schema import schema_dir, schemas
from tests.store import records

ROOT = Path(__file__).resolve().parents[2]


def test_every_kind_has_a_2020_12_schema_requiring_schema_version() -> None:
    files = sorted(p.name for p in (ROOT / "schemas" / "records").glob("*.schema.json"))
    assert files == sorted(f"{k}.schema.json" for k in keys.KINDS)
    for name in files:
        doc = json.loads((ROOT / "schemas" / "records" / name).read_text())
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert {"kind", "schema_version"} <= set(doc["required"])


def test_packaged_schemas_are_the_checkout_schemas() -> None:
    packaged = ROOT / "spdkvirt" / "store" / "schemas"
    assert schema_dir().resolve() == (ROOT / "schemas").resolve()
    for path in (ROOT / "schemas").rglob("*.json"):
        assert (packaged / path.relative_to(ROOT / "schemas")).read_bytes() == path.read_bytes()


def test_validators_are_built_once() -> None:
    assert schemas() is schemas()


@pytest.mark.parametrize("kind", keys.KINDS)
def test_example_records_are_valid(kind: str) -> None:
    rec = records.EXAMPLES[kind]()
    assert schemas().problems(keys.for_record(rec), rec) == []


def test_both_export_protocols_are_valid() -> None:
    rec = records.export_iscsi()
    assert schemas().problems(keys.for_record(rec), rec) == []


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("missing field", records.node(state=None) | {"state": None}, "$.state"),
    ("bad device state", records.device(state="broken"), "$.state"),
    ("device generation starts at 1", records.device(generation=0), "$.generation"),
    ("bad leg state", records.volume(legs=[records.leg("l0", "n1", "d1", state="gone")]), "$.legs[0].state"),
    ("bad identity", records.volume(legs=[records.leg("l0", "n1", "d1", identity="xyz")]), "$.legs[0].identity"),
    ("no legs", records.volume(legs=[]), "$.legs"),
    (
        "duplicate leg ids",
        records.volume(legs=[records.leg("l0", "n1", "d1"), records.leg("l0", "n2", "d1")]),
        "$.legs",
    ),
    ("nvmf export without nvmf", {k: v for k, v in records.export_nvmf().items() if k != "nvmf"}, "$"),
    ("export with both protocols", records.export_nvmf() | {"iscsi": records.export_iscsi()["iscsi"]}, "$"),
    ("bad nqn", records.export_nvmf(nvmf=records.export_nvmf()["nvmf"] | {"subnqn": "spdk:x"}), "$.nvmf.subnqn"),
    ("epoch token 0", records.epoch(leader_token=0), "$.leader_token"),
    ("bad ack phase", records.ack(phase="sleeping"), "$.phase"),
    ("bad ack time", records.ack(at="yesterday"), "$.at"),
    ("journal next past the end", records.journal(next=3), "$.next"),
    ("unknown field", records.leader(color="red"), "$"),
    ("future schema version", records.node(schema_version=2), "$.schema_version"),
]


@pytest.mark.parametrize(("what", "rec", "path"), BAD, ids=[b[0] for b in BAD])
def test_bad_records_are_reported_with_their_path(what: str, rec: dict[str, Any], path: str) -> None:
    key = keys.for_record(rec)
    problems = schemas().problems(key, rec)
    assert problems, what
    assert path in [p.path for p in problems], problems
    assert all(p.key == key for p in problems)


def test_a_record_under_another_key_is_refused() -> None:
    problems = schemas().problems(keys.volume("other"), records.volume("v1"))
    assert [p.message for p in problems] == ["this volume record belongs under /spdkvirt/volume/v1"]
