"""spdk_json_decode_object, as SPDK applies it to RPC params.

A decoder spec maps each key to (type, required). Unknown keys, missing required keys, wrong
types and non-object params all fail the same way SPDK does: one error with the module's code
(-32603 for most modules, -32700 for raid).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import INTERNAL_ERROR, RpcError, decode_failed

Check = Callable[[Any], bool]

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
U16_MAX = 2**16 - 1
U8_MAX = 2**8 - 1


def _int_in(lo: int, hi: int) -> Check:
    def check(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

    return check


_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _is_str(v: Any) -> bool:
    """spdk_json_decode_string: a JSON string that is a valid C string (no embedded NUL)."""
    return isinstance(v, str) and "\x00" not in v


def _is_uuid(v: Any) -> bool:
    """spdk_json_decode_uuid (libuuid's uuid_parse): exactly 8-4-4-4-12 hex digits."""
    return isinstance(v, str) and _UUID_RE.fullmatch(v) is not None


def _list_of(check: Check) -> Check:
    def inner(v: Any) -> bool:
        return isinstance(v, list) and all(check(x) for x in v)

    return inner


TYPES: dict[str, Check] = {
    "str": _is_str,
    "bool": lambda v: isinstance(v, bool),
    "u8": _int_in(0, U8_MAX),
    "u16": _int_in(0, U16_MAX),
    "u32": _int_in(0, U32_MAX),
    "u64": _int_in(0, U64_MAX),
    "i32": _int_in(-(2**31), 2**31 - 1),
    "i64": _int_in(-(2**63), 2**63 - 1),
    "uuid": _is_uuid,
    "list[str]": _list_of(_is_str),
    "list[u32]": _list_of(_int_in(0, U32_MAX)),
    "list[obj]": _list_of(lambda v: isinstance(v, dict)),
    "obj": lambda v: isinstance(v, dict),
    "any": lambda v: True,
}

Spec = Mapping[str, tuple[str, bool]]


def decode(
    params: Any,
    spec: Spec,
    *,
    code: int = INTERNAL_ERROR,
    extra: Mapping[str, Check] | None = None,
) -> dict[str, Any]:
    """Decode params (None means no params member) against spec; raise SPDK's decode error.

    A JSON null is a value like any other: it fails every typed decoder, as in SPDK.
    """
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise decode_failed(code)
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in spec:
            raise decode_failed(code)
        kind, _required = spec[key]
        check = (extra or {}).get(kind) or TYPES[kind]
        if not check(value):
            raise decode_failed(code)
        out[key] = value
    for key, (_kind, required) in spec.items():
        if required and key not in out:
            raise decode_failed(code)
    return out


def require_no_params(params: Any, message: str) -> None:
    """Methods that take no params reject any params member, even {}."""
    if params is not None:
        raise RpcError(-32602, message)
