"""The method schemas: one file per method with params and result, documented, and read as JSON Schema means."""

from __future__ import annotations

import json
import re

from spdkvirt.api import errors
from spdkvirt.api.methods import METHODS
from spdkvirt.api.schemas import Validator, api_schema_dir, api_schemas, first_problem


def test_every_method_has_params_and_result_and_nothing_else() -> None:
    directory = api_schema_dir()
    files = {p.name.removesuffix(".json") for p in directory.glob("*.json") if not p.name.endswith(".schema.json")}
    assert files == set(METHODS)
    for name in METHODS:
        doc = json.loads((directory / f"{name}.json").read_text())
        assert doc["$id"] == f"urn:spdkvirt:schemas:api:{name}"
        assert {"params", "result", "description"} <= set(doc)
    assert set(api_schemas().methods) == set(METHODS)


def test_params_refuse_unknown_fields() -> None:
    for name, schema in api_schemas().methods.items():
        found = first_problem(schema.params, {"no_such_field": 1})
        assert found is not None, name
        assert found.path in (
            "$.no_such_field",
            "$.name",
            "$.volume",
            "$.node",
            "$.snapshot_name",
        )


def test_mutating_methods_take_an_idempotency_key_where_documented() -> None:
    for name, method in METHODS.items():
        props = api_schemas().methods[name].document["params"].get("properties", {})
        if not method.mutating:
            assert "idempotency_key" not in props, name


def test_readme_lists_every_method_and_error_code() -> None:
    text = (api_schema_dir() / "README.md").read_text()
    for name in METHODS:
        assert f"`{name}`" in text, name
    for code, cls in errors.BY_CODE.items():
        assert re.search(rf"\|\s*{code}\s*\|\s*`?{cls.__name__}`?\s*\|", text), (code, cls.__name__)


def test_dollar_matches_only_at_the_very_end() -> None:
    v = Validator({"type": "string", "pattern": "^[a-z]+$"})
    assert v.is_valid("abc")
    assert not v.is_valid("abc\n")
    assert Validator({"pattern": "^[$]x$"}).is_valid("$x")
    assert Validator({"pattern": "^a\\$$"}).is_valid("a$")


def test_integers_are_json_integers() -> None:
    v = Validator({"type": "integer"})
    assert v.is_valid(3)
    assert not v.is_valid(3.0)
    assert not v.is_valid(True)
