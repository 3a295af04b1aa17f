"""The embedded store's state in memory: keys with revisions, leases, and the recent change history.

Pure and deterministic: a transaction is first planned (compares evaluated, results and the list of
changes computed, nothing mutated), then its changes are applied at a revision. Replaying the same
changes from the log rebuilds the same state, so the log stores changes, not requests.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from spdkvirt.store.errors import CorruptStore, LeaseNotFound
from spdkvirt.store.types import (
    Compare,
    Delete,
    Event,
    EventKind,
    Get,
    KeyValue,
    Op,
    OpResult,
    Put,
    TxnResult,
    canonical_json,
)


def copy_value(value: Any) -> Any:
    """A private copy of a JSON value, so callers never share (and mutate) stored state."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise ValueError(f"value is not JSON: {e}") from None


def copy_kv(kv: KeyValue) -> KeyValue:
    return dataclasses.replace(kv, value=copy_value(kv.value))


def copy_event(ev: Event) -> Event:
    return dataclasses.replace(ev, value=copy_value(ev.value)) if ev.value is not None else ev


#: a change as logged: ["p", key, value, lease] or ["d", key]
Change = list[Any]


@dataclass(frozen=True)
class Plan:
    """What a transaction would do: its result, and the changes to apply at ``result.revision``."""

    result: TxnResult
    changes: tuple[Change, ...]


@dataclass
class MemState:
    kv: dict[str, KeyValue] = field(default_factory=dict)
    revision: int = 1
    #: the oldest revision a watch may start from
    compact_revision: int = 0
    #: number of the last applied log entry
    seq: int = 0
    leases: dict[int, int] = field(default_factory=dict)
    lease_keys: dict[int, set[str]] = field(default_factory=dict)
    history: deque[tuple[int, tuple[Event, ...]]] = field(default_factory=deque)
    _keys: list[str] = field(default_factory=list)

    # reading

    def range(self, key: str, prefix: bool) -> list[KeyValue]:
        if not prefix:
            kv = self.kv.get(key)
            return [kv] if kv is not None else []
        lo = bisect.bisect_left(self._keys, key)
        out = []
        for k in self._keys[lo:]:
            if not k.startswith(key):
                break
            out.append(self.kv[k])
        return out

    def events_since(self, start: int) -> list[Event]:
        out: list[Event] = []
        for rev, events in self.history:
            if rev >= start:
                out.extend(events)
        return out

    # planning

    def plan(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> Plan:
        ok = all(self._holds(c) for c in compares)
        rev = self.revision + 1
        view: dict[str, KeyValue | None] = {}
        results: list[OpResult] = []
        changes: list[Change] = []
        for op in success if ok else failure:
            if isinstance(op, Get):
                results.append(OpResult(kvs=tuple(copy_kv(kv) for kv in self._view_range(op.key, op.prefix, view))))
            elif isinstance(op, Put):
                if op.lease and op.lease not in self.leases:
                    raise LeaseNotFound(op.lease)
                prev = self._view_get(op.key, view)
                value = copy_value(op.value)
                view[op.key] = KeyValue(
                    op.key,
                    value,
                    prev.create_revision if prev else rev,
                    rev,
                    prev.version + 1 if prev else 1,
                    op.lease,
                )
                changes.append(["p", op.key, value, op.lease])
                results.append(OpResult())
            elif isinstance(op, Delete):
                gone = self._view_range(op.key, op.prefix, view)
                for kv in gone:
                    view[kv.key] = None
                    changes.append(["d", kv.key])
                results.append(OpResult(deleted=len(gone)))
        result_rev = rev if changes else self.revision
        return Plan(TxnResult(ok, result_rev, tuple(results)), tuple(changes))

    def plan_revoke(self, lease_id: int) -> tuple[Change, ...]:
        if lease_id not in self.leases:
            raise LeaseNotFound(lease_id)
        return tuple(["d", k] for k in sorted(self.lease_keys.get(lease_id, ())))

    def _holds(self, c: Compare) -> bool:
        kv = self.kv.get(c.key)
        if c.target == "value":
            return kv is not None and _cmp(canonical_json(kv.value), canonical_json(c.operand), c.op)
        if kv is None:
            return _cmp(0, int(c.operand), c.op)
        field = {"mod": kv.mod_revision, "create": kv.create_revision, "version": kv.version, "lease": kv.lease}
        return _cmp(field[c.target], int(c.operand), c.op)

    def _view_get(self, key: str, view: dict[str, KeyValue | None]) -> KeyValue | None:
        if key in view:
            return view[key]
        return self.kv.get(key)

    def _view_range(self, key: str, prefix: bool, view: dict[str, KeyValue | None]) -> list[KeyValue]:
        if not prefix:
            kv = self._view_get(key, view)
            return [kv] if kv is not None else []
        merged = {kv.key: kv for kv in self.range(key, True)}
        for k, v in view.items():
            if k.startswith(key):
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
        return [merged[k] for k in sorted(merged)]

    # applying

    def apply(self, rev: int, changes: Iterable[Change]) -> tuple[Event, ...]:
        """Apply logged changes at revision ``rev``; returns the events they make."""
        if rev != self.revision + 1:
            raise CorruptStore(f"revision {rev} follows revision {self.revision}")
        events: list[Event] = []
        for change in changes:
            if change[0] == "p":
                _, key, value, lease = change
                events.append(self._put(rev, key, value, lease))
            elif change[0] == "d":
                ev = self._delete(rev, change[1])
                if ev is not None:
                    events.append(ev)
            else:
                raise CorruptStore(f"unknown change {change!r}")
        self.revision = rev
        batch = tuple(events)
        self.history.append((rev, batch))
        return batch

    def _put(self, rev: int, key: str, value: Any, lease: int) -> Event:
        prev = self.kv.get(key)
        if prev is None:
            bisect.insort(self._keys, key)
        elif prev.lease:
            self.lease_keys.get(prev.lease, set()).discard(key)
        if lease:
            if lease not in self.leases:
                raise CorruptStore(f"{key} attached to unknown lease {lease:x}")
            self.lease_keys.setdefault(lease, set()).add(key)
        kv = KeyValue(key, value, prev.create_revision if prev else rev, rev, prev.version + 1 if prev else 1, lease)
        self.kv[key] = kv
        return Event(EventKind.PUT, key, rev, value, kv.create_revision, kv.version, lease)

    def _delete(self, rev: int, key: str) -> Event | None:
        prev = self.kv.pop(key, None)
        if prev is None:
            return None
        del self._keys[bisect.bisect_left(self._keys, key)]
        if prev.lease:
            self.lease_keys.get(prev.lease, set()).discard(key)
        return Event(EventKind.DELETE, key, rev)

    def grant(self, lease_id: int, ttl: int) -> None:
        self.leases[lease_id] = ttl
        self.lease_keys.setdefault(lease_id, set())

    def drop_lease(self, lease_id: int) -> None:
        self.leases.pop(lease_id, None)
        self.lease_keys.pop(lease_id, None)

    def compact(self, revision: int) -> None:
        self.compact_revision = max(self.compact_revision, revision)
        while self.history and self.history[0][0] < self.compact_revision:
            self.history.popleft()

    # snapshots

    def to_snapshot(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "revision": self.revision,
            "compact_revision": self.compact_revision,
            "kvs": [
                {
                    "key": kv.key,
                    "value": kv.value,
                    "create_revision": kv.create_revision,
                    "mod_revision": kv.mod_revision,
                    "version": kv.version,
                    "lease": kv.lease,
                }
                for kv in (self.kv[k] for k in self._keys)
            ],
            "leases": [{"id": i, "ttl": t} for i, t in sorted(self.leases.items())],
            "history": [{"rev": rev, "events": [_event_json(e) for e in events]} for rev, events in self.history],
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> MemState:
        state = cls(
            revision=int(data["revision"]),
            compact_revision=int(data["compact_revision"]),
            seq=int(data["seq"]),
        )
        for item in data["leases"]:
            state.grant(int(item["id"]), int(item["ttl"]))
        for item in data["kvs"]:
            kv = KeyValue(
                item["key"],
                item["value"],
                int(item["create_revision"]),
                int(item["mod_revision"]),
                int(item["version"]),
                int(item["lease"]),
            )
            state.kv[kv.key] = kv
            if kv.lease:
                state.lease_keys.setdefault(kv.lease, set()).add(kv.key)
        state._keys = sorted(state.kv)
        for item in data["history"]:
            rev = int(item["rev"])
            state.history.append((rev, tuple(_event_from_json(e, rev) for e in item["events"])))
        return state


def _event_json(e: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": e.kind.value, "key": e.key}
    if e.kind is EventKind.PUT:
        out.update(value=e.value, create_revision=e.create_revision, version=e.version, lease=e.lease)
    return out


def _event_from_json(item: dict[str, Any], rev: int) -> Event:
    return Event(
        EventKind(item["kind"]),
        item["key"],
        rev,
        item.get("value"),
        int(item.get("create_revision", 0)),
        int(item.get("version", 0)),
        int(item.get("lease", 0)),
    )


def _cmp(a: Any, b: Any, op: str) -> bool:
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    return bool(a > b)
