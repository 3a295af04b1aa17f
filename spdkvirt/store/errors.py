"""Errors raised by the store, the same for every backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spdkvirt.store.types import KeyValue


class StoreError(Exception):
    """Base class of every store error."""


class Conflict(StoreError):
    """A compare-and-swap found another revision than expected: nothing was written."""

    def __init__(self, key: str, expected: int, current: KeyValue | None) -> None:
        self.key = key
        self.expected = expected
        self.current = current
        actual = current.mod_revision if current is not None else 0
        super().__init__(f"{key}: expected revision {expected}, found {actual}")


class Compacted(StoreError):
    """The revision asked for is older than the oldest one kept: re-read everything, then watch on."""

    def __init__(self, compact_revision: int) -> None:
        self.compact_revision = compact_revision
        super().__init__(
            f"revision was compacted: the oldest revision that can be watched is {compact_revision}; "
            "re-read the whole range and watch from its revision + 1"
        )


class LeaseNotFound(StoreError):
    """The lease does not exist (never granted, revoked or expired)."""

    def __init__(self, lease_id: int) -> None:
        self.lease_id = lease_id
        super().__init__(f"lease {lease_id:x} not found (expired or revoked)")


class StoreUnavailable(StoreError):
    """The store could not be reached; the request was not applied."""


class OutcomeUnknown(StoreUnavailable):
    """The connection broke while a write was in flight: it may or may not have been applied.

    Re-read the keys involved before retrying.
    """


class StoreClosed(StoreError):
    """The store handle was closed."""


class StoreLocked(StoreError):
    """Another process has the file store open."""


class CorruptStore(StoreError):
    """A file store's files are damaged beyond a torn last write."""


class LeadershipLost(StoreError):
    """This candidate is no longer (or never became) the leader."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one stored record: where in it (a JSON path) and what."""

    key: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.path or '$'}: {self.message}"


class InvalidRecord(StoreError):
    """A record failed validation (on write, or when read back): it is never used silently."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        keys = sorted({p.key for p in self.problems})
        self.key = keys[0] if keys else ""
        lines = "; ".join(str(p) for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"invalid record: {lines}{more}")
