"""Fuzzing the dispatcher with requests made from the method schemas: valid-but-hostile ones and broken ones.

For every method, each example sends a valid call (as generated from its params schema) and mutations
of it: a required field dropped, an unknown field added, a field given a hostile value (huge, unicode,
'/', '..', NUL, trailing newline, lone surrogate, negative or huge numbers, floats, deep nesting, wrong
types), or no object at all. Whatever comes in:

- the answer is never -32603 (no input makes the server fail);
- a refused call is -32602 with a ``path`` and the service saw nothing of it;
- an accepted call reached the service with params whose every field passes an oracle written apart
  from the validator (so a hostile value cannot slip through the schemas);
- a mutation the oracle knows is wrong is refused, with a path inside the mutated field.

More than 10,000 requests in all; ``CI`` set in the environment makes the run derandomized.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("hypothesis_jsonschema")

from spdkvirt.api import errors
from spdkvirt.api.methods import METHODS
from spdkvirt.api.schemas import json_path
from spdkvirt.api.server import Dispatcher
from spdkvirt.api.service import MemoryIdempotencyLog
from tests.api.fake import FakeService
from tests.api.strategies import (
    HOSTILE_KEYS,
    Path,
    hostile_for,
    leaf_ok,
    leaves,
    params_schema,
    parent_objects,
    values,
)

MUTATIONS_PER_EXAMPLE = 6
EXAMPLES_PER_METHOD = 120
#: every method gets its share of the 10,000 requests
MIN_REQUESTS_PER_METHOD = 10_000 // len(METHODS) + 1

FUZZ = settings(
    max_examples=EXAMPLES_PER_METHOD,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


class Mutation:
    """A changed copy of valid params; ``where``: the field it changed; ``wrong``: known to be invalid."""

    def __init__(self, params: Any, where: Path, wrong: bool) -> None:
        self.params = params
        self.where = where
        self.wrong = wrong


def _set(params: dict[str, Any], where: Path, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(params)
    node: Any = out
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    return out


@st.composite
def mutation(draw: st.DrawFn, schema: dict[str, Any], base: dict[str, Any]) -> Mutation:
    kind = draw(st.sampled_from(["drop", "extra", "value", "value", "value", "not_object"]))
    objects = list(parent_objects(schema, base))
    if kind == "drop":
        where, sub = draw(st.sampled_from(objects))
        node: dict[str, Any] = base
        for part in where:
            node = node[part]
        required = [k for p in (sub, *sub.get("allOf", [])) for k in p.get("required", []) if k in node]
        if required:
            key = draw(st.sampled_from(required))
            out = copy.deepcopy(base)
            target: Any = out
            for part in where:
                target = target[part]
            del target[key]
            return Mutation(out, (*where, key), True)
        kind = "extra"
    if kind == "extra":
        where, sub = draw(st.sampled_from(objects))
        known = {k for p in (sub, *sub.get("allOf", [])) for k in p.get("properties", {})}
        key = draw(HOSTILE_KEYS.filter(lambda k: k not in known))
        return Mutation(_set(base, (*where, key), draw(hostile_for({}))), (*where, key), True)
    if kind == "value":
        fields = [(p, s) for p, s in leaves(schema, base) if p]
        optional = [(k, s) for k, s in schema.get("properties", {}).items() if k not in base]
        choice = draw(st.sampled_from(fields + [((k,), s) for k, s in optional] or [((), schema)]))
        where, sub = choice
        if where:
            value = draw(hostile_for(sub))
            verdict = leaf_ok(sub, value)
            return Mutation(_set(base, where, value), where, verdict is False)
    value = draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=10), st.integers(), st.none()))
    return Mutation(value, (), True)


def _within(path: str, where: Path) -> bool:
    top = json_path(where)
    return path == top or path.startswith((top + ".", top + "[")) or (top == "$" and path.startswith("$"))


_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_PRINTABLE = re.compile(r"[!-~]+")
#: the rules of the API for what a service may ever receive, written here apart from the schema files
RULES: dict[str, Callable[[Any], bool]] = {
    "name": lambda v: bool(_NAME.fullmatch(v)),
    "snapshot_name": lambda v: bool(_NAME.fullmatch(v)),
    "volume": lambda v: bool(_NAME.fullmatch(v)),
    "node": lambda v: bool(_ID.fullmatch(v)),
    "device_id": lambda v: bool(_ID.fullmatch(v)),
    "export_id": lambda v: bool(_ID.fullmatch(v)),
    "size_bytes": lambda v: type(v) is int and 1 << 20 <= v <= 1 << 50 and v % 4096 == 0,
    "redundancy": lambda v: type(v) is int and 1 <= v <= 3,
    "thin": lambda v: type(v) is bool,
    "limit": lambda v: type(v) is int and v >= 1,
    "nodes": lambda v: all(_ID.fullmatch(n) for n in v) and len(set(v)) == len(v),
    "exclude_nodes": lambda v: all(_ID.fullmatch(n) for n in v) and len(set(v)) == len(v),
    "hosts": lambda v: all(h.startswith("nqn.") and _PRINTABLE.fullmatch(h) and len(h) <= 223 for h in v),
    "initiators": lambda v: all(i == "ANY" or (i == i.lower() and _PRINTABLE.fullmatch(i)) for i in v),
    "secret": lambda v: bool(_PRINTABLE.fullmatch(v)) and 12 <= len(v) <= 255,
    "mutual_secret": lambda v: bool(_PRINTABLE.fullmatch(v)) and 12 <= len(v) <= 255,
    "protocol": lambda v: v in ("nvmf", "iscsi"),
    "state": lambda v: v in ("available", "maintenance", "removed"),
}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _check_received(schema: dict[str, Any], params: dict[str, Any]) -> None:
    """What reached the service keeps the API's rules, by the schema and by :data:`RULES`."""
    assert "idempotency_key" not in params
    for where, sub in leaves(schema, params):
        if where:
            value = _get(params, where)
            assert leaf_ok(sub, value) is not False, (json_path(where), value)
            rule = RULES.get(str(where[-1]))
            assert rule is None or rule(value), (json_path(where), value)
    for text in _strings(params):
        assert "\x00" not in text and len(text) <= 4096
        text.encode("utf-8")


def _get(value: Any, where: Path) -> Any:
    for part in where:
        value = value[part]
    return value


async def _send(dispatcher: Dispatcher, fake: FakeService, method: str, params: Any) -> tuple[dict[str, Any], bool]:
    before = len(fake.calls)
    rid = len(fake.calls) + 1
    answer = await dispatcher.handle({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    called = len(fake.calls) > before
    assert isinstance(answer, dict) and answer["id"] == rid
    err = answer.get("error")
    if err is not None:
        assert err["code"] != errors.INTERNAL_ERROR, err
        assert isinstance(err["message"], str) and err["message"]
        assert isinstance(err["data"], dict)
        if err["code"] == errors.INVALID_PARAMS:
            assert isinstance(err["data"].get("path"), str) and err["data"]["path"].startswith("$"), err
            assert err["data"]["reason"], err
            assert not called, (method, params)
        else:
            assert err["code"] in errors.SERVER_ERROR_RANGE, err
    json.dumps(answer)
    return answer, called


@pytest.mark.parametrize("method", sorted(METHODS))
def test_fuzz(method: str) -> None:
    import asyncio

    schema = params_schema(method)
    counted = [0]

    @FUZZ
    @given(data=st.data(), base=values(schema))
    def run(data: st.DataObject, base: dict[str, Any]) -> None:
        fake = FakeService()
        dispatcher = Dispatcher(fake, fake, idempotency=MemoryIdempotencyLog(), debug=True)
        mutations = [data.draw(mutation(schema, base)) for _ in range(MUTATIONS_PER_EXAMPLE)]

        async def go() -> None:
            answer, called = await _send(dispatcher, fake, method, base)
            if called:
                _check_received(schema, fake.calls[-1][1])
            for m in mutations:
                answer, called = await _send(dispatcher, fake, method, m.params)
                if called:
                    _check_received(schema, fake.calls[-1][1])
                if m.wrong:
                    err = answer.get("error", {})
                    assert err.get("code") == errors.INVALID_PARAMS, (m.where, m.params, answer)
                    assert _within(err["data"]["path"], m.where), (m.where, err)

        asyncio.run(go())
        counted[0] += 1 + len(mutations)

    run()
    assert counted[0] >= MIN_REQUESTS_PER_METHOD, counted[0]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0]) | JSON,
        "method": st.sampled_from(sorted(METHODS)) | st.text(max_size=30) | JSON,
        "params": st.dictionaries(st.sampled_from(["name", "size_bytes", "volume", "x"]), JSON, max_size=3) | JSON,
        "id": st.integers() | st.text(max_size=5) | JSON,
        "extra": JSON,
    },
)
MESSAGES = st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda v: json.dumps(v).encode()),
    REQUESTS.map(lambda v: json.dumps(v).encode()),
    st.lists(REQUESTS, max_size=6).map(lambda v: json.dumps(v).encode()),
)
_REFUSALS = (errors.PARSE_ERROR, errors.INVALID_REQUEST, errors.METHOD_NOT_FOUND, errors.INVALID_PARAMS)


@settings(FUZZ, max_examples=1000)
@given(raw=MESSAGES)
def test_fuzz_wire(raw: bytes) -> None:
    """Raw bytes, stray JSON and request-like objects: never a failure, always JSON-RPC answers."""
    import asyncio

    fake = FakeService()
    dispatcher = Dispatcher(fake, fake, idempotency=MemoryIdempotencyLog(), debug=True)
    out = asyncio.run(dispatcher.handle_bytes(raw))
    if out is None:
        return
    answer = json.loads(out)
    answers = answer if isinstance(answer, list) else [answer]
    assert answers
    refused = 0
    for a in answers:
        assert a["jsonrpc"] == "2.0" and "id" in a
        if "error" in a:
            assert a["error"]["code"] != errors.INTERNAL_ERROR, a
            refused += a["error"]["code"] in _REFUSALS
    if refused == len(answers) and not isinstance(answer, list):
        assert fake.calls == []
