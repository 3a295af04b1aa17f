"""Values the store API takes and returns: key-values, events, compares, transaction operations."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Literal

#: A stored record: a JSON object (after validation always a dict carrying ``kind`` and ``schema_version``).
Record = dict[str, Any]

CompareTarget = Literal["mod", "create", "version", "value", "lease"]
CompareOp = Literal["==", "!=", "<", ">"]


def canonical_json(value: Any) -> bytes:
    """The one byte encoding of a JSON value used on the wire and for value compares."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class KeyValue:
    """A key with its value and etcd-style revisions.

    ``create_revision``: revision that created the key; ``mod_revision``: revision of its last change;
    ``version``: number of changes since creation (1 after creation); ``lease``: attached lease id or 0.
    """

    key: str
    value: Any
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


class EventKind(enum.StrEnum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True)
class Event:
    """One change seen by a watch. ``revision`` is the store revision of the change."""

    kind: EventKind
    key: str
    revision: int
    value: Any = None
    create_revision: int = 0
    version: int = 0
    lease: int = 0


@dataclass(frozen=True)
class Compare:
    """A condition of a transaction on one key.

    A missing key has mod, create, version and lease 0 and compares unequal to any value.
    """

    key: str
    target: CompareTarget
    op: CompareOp
    operand: Any

    @classmethod
    def revision(cls, key: str, mod_revision: int) -> Compare:
        """True while ``key`` is at ``mod_revision`` (0: while it does not exist)."""
        return cls(key, "mod", "==", mod_revision)

    @classmethod
    def absent(cls, key: str) -> Compare:
        return cls(key, "create", "==", 0)

    @classmethod
    def present(cls, key: str) -> Compare:
        return cls(key, "create", ">", 0)

    @classmethod
    def created(cls, key: str, create_revision: int) -> Compare:
        """True while ``key`` is the same incarnation created at ``create_revision``."""
        return cls(key, "create", "==", create_revision)

    @classmethod
    def value_is(cls, key: str, value: Any) -> Compare:
        return cls(key, "value", "==", value)


@dataclass(frozen=True)
class Put:
    key: str
    value: Any
    lease: int = 0


@dataclass(frozen=True)
class Delete:
    key: str
    prefix: bool = False


@dataclass(frozen=True)
class Get:
    key: str
    prefix: bool = False


Op = Put | Delete | Get


@dataclass(frozen=True)
class OpResult:
    """Result of one transaction operation: ``kvs`` for a Get, ``deleted`` for a Delete."""

    kvs: tuple[KeyValue, ...] = ()
    deleted: int = 0


@dataclass(frozen=True)
class TxnResult:
    """``succeeded``: whether all compares held; ``revision``: store revision after the transaction."""

    succeeded: bool
    revision: int
    results: tuple[OpResult, ...] = ()


@dataclass(frozen=True)
class RangeResult:
    """Keys of a range in key order, read at store revision ``revision``."""

    kvs: tuple[KeyValue, ...]
    revision: int


def prefix_end(prefix: bytes) -> bytes:
    """The etcd range end matching every key that starts with ``prefix``."""
    b = bytearray(prefix)
    for i in reversed(range(len(b))):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"


@dataclass(frozen=True)
class Undecodable:
    """A stored value that is not JSON (written by something else); reported, never used."""

    raw: bytes
    error: str
