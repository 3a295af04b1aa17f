"""The admin API's schemas (``schemas/api/<method>.json``): loaded once, used to check every call.

Each method file holds a ``params`` and a ``result`` JSON Schema (Draft 2020-12); shared pieces live in
``schemas/api/defs.schema.json`` and the record definitions ``urn:spdkvirt:schemas:defs``. Files are
found and registered the way the record schemas are (:mod:`spdkvirt.store.schema`).

Two rules are stricter than the ``jsonschema`` package's defaults, as JSON Schema means them:
``pattern`` is an ECMA-262 regular expression, so ``$`` matches only at the very end (Python's ``$``
also matches before a final newline, which would let ``"vol\\n"`` through), and ``integer`` means a
JSON integer, never ``1.0`` or ``true``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.validators
import referencing
from jsonschema.exceptions import ValidationError

from spdkvirt.store.schema import load_documents, schema_dir

_MAX_REASON = 300
_MAX_KEY = 64
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def api_schema_dir() -> Path:
    """Where the method schemas are: ``api/`` next to the record schemas."""
    return schema_dir() / "api"


@functools.cache
def _ecma(pattern: str) -> re.Pattern[str]:
    """Compile an ECMA-262 pattern with Python's ``re``: an unescaped ``$`` outside a class becomes ``\\Z``."""
    out: list[str] = []
    escaped = in_class = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            out.append(r"\Z")
            continue
        out.append(ch)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield ValidationError(f"does not match {pattern}")


def _strict_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


Validator: Any = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)


@dataclass(frozen=True)
class Finding:
    """One thing wrong with params: where (``$.size_bytes``) and what."""

    path: str
    reason: str
    depth: int


def json_path(parts: Any) -> str:
    """``$.a.b[0]`` for a path in a JSON value; odd keys quoted as ``$['a/b']``, long ones cut."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part) and len(part) <= _MAX_KEY:
            out += f".{part}"
        else:
            shown = part if len(part) <= _MAX_KEY else part[:_MAX_KEY] + "..."
            out += "[" + ascii(shown) + "]"
    return out


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _reason(e: ValidationError) -> str:
    """A short reason that never repeats the (possibly huge or hostile) value."""
    keyword, want, schema = e.validator, e.validator_value, e.schema
    if isinstance(schema, dict) and "x-reason" in schema:
        return str(schema["x-reason"])
    simple: dict[str, str] = {
        "type": f"must be of type {want}, not {_type_name(e.instance)}",
        "pattern": f"must match {want}",
        "minimum": f"must be at least {want}",
        "maximum": f"must be at most {want}",
        "exclusiveMinimum": f"must be more than {want}",
        "exclusiveMaximum": f"must be less than {want}",
        "multipleOf": f"must be a multiple of {want}",
        "minLength": f"must be at least {want} characters long",
        "maxLength": f"must be at most {want} characters long",
        "minItems": f"must have at least {want} items",
        "maxItems": f"must have at most {want} items",
        "uniqueItems": "items must be unique",
        "enum": "must be one of " + ", ".join(map(str, want)) if isinstance(want, list) else "",
        "const": f"must be {want}",
        "not": "not allowed here",
        "None": "not allowed here",
        "anyOf": "matches none of the allowed forms",
        "oneOf": "must match exactly one of the allowed forms",
    }
    text = simple.get(str(keyword))
    return text if text else _short(e.message)


def _findings(e: ValidationError) -> list[Finding]:
    parts = list(e.absolute_path)
    instance = e.instance
    want: Any = e.validator_value
    if e.validator in ("anyOf", "oneOf") and e.context:
        deeper = [f for sub in e.context for f in _findings(sub)]
        best = pick(deeper)
        if best is not None and best.depth > len(parts):
            return [best]
    if e.validator == "required" and isinstance(instance, dict):
        return [
            Finding(json_path([*parts, name]), "required field is missing", len(parts) + 1)
            for name in want
            if name not in instance
        ]
    if e.validator == "dependentRequired" and isinstance(instance, dict):
        return [
            Finding(json_path([*parts, need]), f"required with {name}", len(parts) + 1)
            for name, needs in want.items()
            if name in instance
            for need in needs
            if need not in instance
        ]
    if e.validator == "additionalProperties" and isinstance(instance, dict) and e.validator_value is False:
        known = e.schema.get("properties", {}) if isinstance(e.schema, dict) else {}
        return [Finding(json_path([*parts, k]), "unknown field", len(parts) + 1) for k in instance if k not in known]
    return [Finding(json_path(parts), _reason(e), len(parts))]


def pick(findings: list[Finding]) -> Finding | None:
    """The finding to report: the deepest, and of those the first."""
    best: Finding | None = None
    for f in findings:
        if best is None or f.depth > best.depth:
            best = f
    return best


def first_problem(validator: Any, instance: Any) -> Finding | None:
    """The one problem to report for ``instance`` (None when valid), the same every time."""
    found = [f for e in validator.iter_errors(instance) for f in _findings(e)]
    return pick(found)


@dataclass(frozen=True)
class MethodSchema:
    """The compiled params and result validators of one method, and the params' top-level defaults."""

    method: str
    params: Any
    result: Any
    defaults: Mapping[str, Any]
    document: Mapping[str, Any]

    def with_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with every absent top-level field that has a default filled in."""
        return {**self.defaults, **params}


@dataclass(frozen=True)
class ApiSchemas:
    """The method schemas by method name, and the registry that resolves their references."""

    directory: Path
    methods: Mapping[str, MethodSchema]
    registry: referencing.Registry[Any]


def _defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    props = params.get("properties", {})
    return {k: v["default"] for k, v in props.items() if isinstance(v, dict) and "default" in v}


@functools.cache
def api_schemas() -> ApiSchemas:
    """Every method's compiled schemas, by method name; built on first use, then shared."""
    directory = api_schema_dir()
    top = directory.parent
    method_files = sorted(p for p in directory.glob("*.json") if not p.name.endswith(".schema.json"))
    registry, docs = load_documents([top / "defs.schema.json", directory / "defs.schema.json", *method_files])
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    methods: dict[str, MethodSchema] = {}
    for path in method_files:
        doc = docs[path]
        name = path.name.removesuffix(".json")
        if doc.get("title") != name or "params" not in doc or "result" not in doc:
            raise ValueError(f"{path}: a method schema needs title {name!r}, params and result")

        def compile_part(part: str, base: str = doc["$id"]) -> Any:
            return Validator({"$ref": f"{base}#/{part}"}, registry=registry, format_checker=checker)

        params = registry.resolver().lookup(f"{doc['$id']}#/params").contents
        methods[name] = MethodSchema(name, compile_part("params"), compile_part("result"), _defaults(params), doc)
    return ApiSchemas(directory, methods, registry)
