"""Key layout of the virtualization database: every key spdkvirt stores, in one place.

Keys are ``/spdkvirt/<kind>/<id>[/<id>...]``. Ids are short names without ``/``; numbers that must
sort numerically (epochs) are zero-padded to 20 digits so that a prefix range returns them in order.
Each record carries the fields its key is made of, so :func:`for_record` gives a record's key and the
store can refuse a record written under someone else's key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROOT = "/spdkvirt/"

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}"
_ID = re.compile(ID_PATTERN)
_EPOCH_DIGITS = 20

#: kind -> the record fields that make up its key, in key order
IDENTITY: dict[str, tuple[str, ...]] = {
    "node": ("node_id",),
    "device": ("node", "device_id"),
    "volume": ("name",),
    "export": ("volume", "export_id"),
    "epoch": ("number",),
    "ack": ("epoch", "node"),
    "journal": ("op_id",),
    "leader": ("election", "lease"),
    "alive": ("node",),
    "status": ("volume",),
    "idempotency": ("key",),
}
KINDS: tuple[str, ...] = tuple(IDENTITY)


class KeyLayoutError(ValueError):
    """A key or id that does not fit the layout."""


@dataclass(frozen=True)
class KeyInfo:
    """A parsed key: its record kind and the id parts after the kind."""

    kind: str
    parts: tuple[str, ...]


def check_id(value: str) -> str:
    """Return ``value`` if it is a valid id part, else raise :class:`KeyLayoutError`."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise KeyLayoutError(f"invalid id {value!r}: must match {ID_PATTERN}")
    return value


def _number(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 10**_EPOCH_DIGITS:
        raise KeyLayoutError(f"invalid number {value!r}")
    return f"{value:0{_EPOCH_DIGITS}d}"


def _candidate(lease: int) -> str:
    if isinstance(lease, bool) or not isinstance(lease, int) or not 0 < lease < 2**64:
        raise KeyLayoutError(f"invalid lease id {lease!r}")
    return f"{lease:016x}"


def prefix(kind: str, *parts: str) -> str:
    """The prefix holding every record of ``kind`` (narrowed by leading id parts), ending in ``/``."""
    if kind not in IDENTITY:
        raise KeyLayoutError(f"unknown record kind {kind!r}")
    return ROOT + "/".join([kind, *parts]) + "/"


def node(node_id: str) -> str:
    return prefix("node") + check_id(node_id)


def device(node_id: str, device_id: str) -> str:
    return prefix("device", check_id(node_id)) + check_id(device_id)


def devices(node_id: str | None = None) -> str:
    return prefix("device") if node_id is None else prefix("device", check_id(node_id))


def volume(name: str) -> str:
    return prefix("volume") + check_id(name)


def export(volume_name: str, export_id: str) -> str:
    return prefix("export", check_id(volume_name)) + check_id(export_id)


def exports(volume_name: str | None = None) -> str:
    return prefix("export") if volume_name is None else prefix("export", check_id(volume_name))


def epoch(number: int) -> str:
    return prefix("epoch") + _number(number)


def ack(epoch_number: int, node_id: str) -> str:
    return prefix("ack", _number(epoch_number)) + check_id(node_id)


def acks(epoch_number: int | None = None) -> str:
    return prefix("ack") if epoch_number is None else prefix("ack", _number(epoch_number))


def journal(op_id: str) -> str:
    return prefix("journal") + check_id(op_id)


def leader(election: str, lease: int) -> str:
    """The candidacy key of the holder of ``lease`` in ``election``."""
    return prefix("leader", check_id(election)) + _candidate(lease)


def alive(node_id: str) -> str:
    """A node agent's liveness record, attached to its lease."""
    return prefix("alive") + check_id(node_id)


def status(volume_name: str) -> str:
    """What the owner of a volume last reported of it."""
    return prefix("status") + check_id(volume_name)


def idempotency(key: str) -> str:
    """The first result of a mutating API call made with this idempotency key."""
    return prefix("idempotency") + check_id(key)


def candidates(election: str) -> str:
    return prefix("leader", check_id(election))


_BUILDERS: dict[str, Any] = {
    "node": node,
    "device": device,
    "volume": volume,
    "export": export,
    "epoch": epoch,
    "ack": ack,
    "journal": journal,
    "leader": leader,
    "alive": alive,
    "status": status,
    "idempotency": idempotency,
}


def parse(key: str) -> KeyInfo:
    """Split a record key into kind and id parts; raise :class:`KeyLayoutError` if it is not one."""
    if not key.startswith(ROOT):
        raise KeyLayoutError(f"key {key!r} is not under {ROOT}")
    kind, *parts = key[len(ROOT) :].split("/")
    if kind not in IDENTITY:
        raise KeyLayoutError(f"key {key!r}: unknown record kind {kind!r}")
    if len(parts) != len(IDENTITY[kind]) or not all(parts):
        raise KeyLayoutError(f"key {key!r}: a {kind} key has {len(IDENTITY[kind])} id part(s)")
    return KeyInfo(kind, tuple(parts))


def for_record(record: Mapping[str, Any]) -> str:
    """The key a record belongs under, from its ``kind`` and identity fields."""
    kind = record.get("kind")
    if not isinstance(kind, str) or kind not in IDENTITY:
        raise KeyLayoutError(f"record has no known kind: {kind!r}")
    try:
        args = [record[field] for field in IDENTITY[kind]]
    except KeyError as e:
        raise KeyLayoutError(f"{kind} record lacks its identity field {e.args[0]!r}") from None
    key: str = _BUILDERS[kind](*args)
    return key


def check_prefix(value: str) -> str:
    """Return ``value`` if it is a usable range/watch prefix inside the layout."""
    if not value.startswith(ROOT):
        raise KeyLayoutError(f"prefix {value!r} is not under {ROOT}")
    return value
