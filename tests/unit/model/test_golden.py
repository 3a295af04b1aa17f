"""Golden scenarios: a node's view and what its SPDK reports, and the plan the node makes of them.

One JSON file per scenario in ``tests/data/golden/``::

    {"description": TEXT,
     "view": {"node", "nodes": [node records], "volumes": [volume records], "exports": [export records],
              "held": [volume names], "complete": BOOL},
     "observed": {METHOD: RESULT for the get-RPCs of observed.QUERIES, as a real SPDK answers them,
                  "held": [volumes the agent holds] or null (not known since a restart)},
     "expected": {"steps": [Step.json() in the order the executor runs them], "findings": [Finding.json()]}}

``SPDKVIRT_UPDATE_GOLDEN=1`` rewrites the ``expected`` part of every file from the planner's
output, so that a change of behaviour shows as a diff of the golden files for review.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.model.observed import QUERIES, observe
from spdkvirt.model.plan import plan_node
from spdkvirt.store import keys
from spdkvirt.store.schema import schemas
from tests.unit.model.builders import view_of_json

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden"
UPDATE = os.environ.get("SPDKVIRT_UPDATE_GOLDEN") == "1"
KEYS = {"description", "view", "observed", "expected"}


def scenarios() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def planned(doc: dict[str, Any]) -> dict[str, Any]:
    observed = dict(doc["observed"])
    held = observed.pop("held", None)
    plan = plan_node(view_of_json(doc["view"]), observe(observed, None if held is None else frozenset(held)))
    return {
        "steps": [s.json() for _, steps in plan.stages() for s in steps],
        "findings": [f.json() for f in plan.findings],
    }


def write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n")


@pytest.mark.parametrize("path", scenarios(), ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert set(doc) == KEYS, f"{path.name}: a scenario has exactly {sorted(KEYS)}"
    assert set(doc["observed"]) <= {m for m, _ in QUERIES} | {"held"}
    got = planned(doc)
    if UPDATE:
        if got != doc["expected"]:
            write(path, {**doc, "expected": got})
        return
    assert got == doc["expected"], f"{path.name}: {doc['description']} (SPDKVIRT_UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize("path", scenarios(), ids=lambda p: p.stem)
def test_golden_views_hold_valid_records(path: Path) -> None:
    view = json.loads(path.read_text())["view"]
    for record in (*view["nodes"], *view["volumes"], *view["exports"]):
        schemas().validate(keys.for_record(record), record)


def test_there_are_golden_scenarios() -> None:
    assert len(scenarios()) >= 8
