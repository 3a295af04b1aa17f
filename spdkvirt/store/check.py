"""Whole-database checks: every record against its schema, and the references between records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from spdkvirt.store import keys
from spdkvirt.store.schema import Schemas
from spdkvirt.store.types import KeyValue

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    level: Level
    key: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.key}: {self.path or '$'}: {self.message}"


def check_records(kvs: Sequence[KeyValue], schemas: Schemas) -> list[Finding]:
    """Errors for records that fail validation; warnings for references to records that are missing."""
    findings: list[Finding] = []
    good: dict[str, dict[str, Any]] = {}
    for kv in kvs:
        problems = schemas.problems(kv.key, kv.value)
        findings.extend(Finding("error", p.key, p.path, p.message) for p in problems)
        if not problems:
            good[kv.key] = kv.value
    leases = {kv.key: kv.lease for kv in kvs}
    for key, rec in good.items():
        findings.extend(Finding("warning", key, path, msg) for path, msg in _references(key, rec, good, leases))
    return findings


def _references(
    key: str, rec: dict[str, Any], good: dict[str, dict[str, Any]], leases: dict[str, int]
) -> Iterable[tuple[str, str]]:
    kind = rec["kind"]

    def missing(path: str, target: str, what: str) -> Iterable[tuple[str, str]]:
        if target not in good:
            yield path, f"refers to {what} {target}, which does not exist"

    if kind == "device":
        yield from missing("$.node", keys.node(rec["node"]), "node")
    elif kind == "volume":
        yield from missing("$.owner_node", keys.node(rec["owner_node"]), "node")
        for i, leg in enumerate(rec["legs"]):
            yield from missing(f"$.legs[{i}].node", keys.node(leg["node"]), "node")
            yield from missing(f"$.legs[{i}].device", keys.device(leg["node"], leg["device"]), "device")
    elif kind == "export":
        yield from missing("$.volume", keys.volume(rec["volume"]), "volume")
        yield from missing("$.node", keys.node(rec["node"]), "node")
    elif kind == "ack":
        epoch = good.get(keys.epoch(rec["epoch"]))
        if epoch is None:
            yield "$.epoch", f"refers to epoch {rec['epoch']}, which does not exist"
        elif rec["node"] not in epoch["affected_nodes"]:
            yield "$.node", f"node {rec['node']} is not among the nodes of epoch {rec['epoch']}"
    elif kind == "leader" and leases.get(key) != rec["lease"]:
        yield "$.lease", f"record names lease {rec['lease']} but the key is attached to lease {leases.get(key)}"
