"""Record schemas (JSON Schema 2020-12, ``schemas/``): loaded and compiled once, used on every write and read.

The schema files ship inside the package as ``spdkvirt/store/schemas`` (a link to the top-level
``schemas/`` directory in a source checkout, real files in an installed wheel), so they are found in an
editable install, a normal install and a plain checkout alike.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import referencing
from referencing.jsonschema import DRAFT202012

from spdkvirt.store import keys
from spdkvirt.store.errors import InvalidRecord, Problem
from spdkvirt.store.types import Undecodable

SCHEMA_VERSION = 1
_ENV = "SPDKVIRT_SCHEMAS"
_MAX_MESSAGE = 300


def schema_dir() -> Path:
    """Where the schemas are: $SPDKVIRT_SCHEMAS, the packaged copy, or the checkout's ``schemas/``."""
    env = os.environ.get(_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(Path(str(importlib.resources.files("spdkvirt.store") / "schemas")))
    candidates.append(Path(__file__).resolve().parents[2] / "schemas")
    for c in candidates:
        if (c / "records").is_dir():
            return c
    raise FileNotFoundError(f"record schemas not found (looked in {', '.join(map(str, candidates))})")


def _check_volume(value: Mapping[str, Any]) -> list[tuple[str, str]]:
    ids = [leg.get("leg_id") for leg in value.get("legs", ())]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    return [("$.legs", f"leg_id {d!r} appears more than once") for d in dup]


def _check_journal(value: Mapping[str, Any]) -> list[tuple[str, str]]:
    if value["next"] > len(value["steps"]):
        return [("$.next", f"next ({value['next']}) is past the last step ({len(value['steps'])} steps)")]
    return []


#: checks JSON Schema cannot express, run after a record passed its schema
_EXTRA: dict[str, Callable[[Mapping[str, Any]], list[tuple[str, str]]]] = {
    "volume": _check_volume,
    "journal": _check_journal,
}


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


@dataclass(frozen=True)
class Schemas:
    """Compiled validators, one per record kind."""

    directory: Path
    validators: Mapping[str, jsonschema.Draft202012Validator]

    def problems(self, key: str, value: Any) -> list[Problem]:
        """Everything wrong with ``value`` stored under ``key`` (empty when it is a good record)."""
        try:
            kind = keys.parse(key).kind
        except keys.KeyLayoutError as e:
            return [Problem(key, "", str(e))]
        if isinstance(value, Undecodable):
            return [Problem(key, "$", f"value is not JSON: {value.error}")]
        if not isinstance(value, dict):
            return [Problem(key, "$", f"value is not a JSON object but {type(value).__name__}")]
        found = [
            Problem(key, e.json_path, _short(e.message))
            for e in sorted(self.validators[kind].iter_errors(value), key=lambda e: e.json_path)
        ]
        if found:
            return found
        if (want := keys.for_record(value)) != key:
            return [Problem(key, "$", f"this {kind} record belongs under {want}")]
        extra = _EXTRA.get(kind)
        return [Problem(key, p, m) for p, m in extra(value)] if extra else []

    def validate(self, key: str, value: Any) -> None:
        """Raise :class:`InvalidRecord` (naming the key and the path in the record) unless valid."""
        found = self.problems(key, value)
        if found:
            raise InvalidRecord(found)


def load_documents(paths: Iterable[Path]) -> tuple[referencing.Registry[Any], dict[Path, dict[str, Any]]]:
    """Read and check schema documents: a registry resolving each by its ``$id``, and the documents by path."""
    docs = {}
    for path in paths:
        doc = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(doc)
        docs[path] = doc
    resources = [(doc["$id"], DRAFT202012.create_resource(doc)) for doc in docs.values()]
    return referencing.Registry().with_resources(resources), docs


@functools.cache
def schemas() -> Schemas:
    """The compiled schemas; built on first use, then shared."""
    directory = schema_dir()
    registry, loaded = load_documents(
        [directory / "defs.schema.json", *sorted((directory / "records").glob("*.schema.json"))]
    )
    docs = {p.name.removesuffix(".schema.json"): d for p, d in loaded.items() if p.parent.name == "records"}
    missing = set(keys.KINDS) - set(docs)
    if missing:
        raise FileNotFoundError(f"{directory / 'records'}: no schema for {', '.join(sorted(missing))}")
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    validators = {
        kind: jsonschema.Draft202012Validator(doc, registry=registry, format_checker=checker)
        for kind, doc in docs.items()
    }
    return Schemas(directory, validators)
