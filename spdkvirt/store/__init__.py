"""The virtualization database: what spdkvirt knows, kept in an embedded file store or in etcd.

Open one with :func:`open_store` and a URL (``file:///path/to/dir`` or ``etcd://host:port,...``).
Key layout: :mod:`spdkvirt.store.keys`; record schemas: ``schemas/records/<kind>.schema.json``.
"""

from __future__ import annotations

from spdkvirt.store.backend import Backend
from spdkvirt.store.config import EtcdConfig, FileConfig
from spdkvirt.store.election import Election, LeaderInfo, Leadership
from spdkvirt.store.errors import (
    Compacted,
    Conflict,
    CorruptStore,
    InvalidRecord,
    LeadershipLost,
    LeaseNotFound,
    OutcomeUnknown,
    Problem,
    StoreClosed,
    StoreError,
    StoreLocked,
    StoreUnavailable,
)
from spdkvirt.store.lease import Lease
from spdkvirt.store.store import GuardFailed, Resync, Store, Watch, WatchCursor
from spdkvirt.store.types import (
    Compare,
    Delete,
    Event,
    EventKind,
    Get,
    KeyValue,
    OpResult,
    Put,
    RangeResult,
    TxnResult,
)
from spdkvirt.store.url import default_url, parse_url


async def open_backend(url: str, *, create: bool = True) -> Backend:
    """The raw backend for ``url`` (no validation): for tools that must see bad records too.

    ``create=False``: a file store that does not exist yet is an error rather than made empty."""
    cfg = parse_url(url)
    if isinstance(cfg, FileConfig):
        from spdkvirt.store.file import FileBackend

        return await FileBackend.open(cfg.path, snapshot_bytes=cfg.snapshot_bytes, history=cfg.history, create=create)
    from spdkvirt.store.etcd import EtcdBackend

    return await EtcdBackend.open(cfg)


async def open_store(url: str | None = None) -> Store:
    """Open the store at ``url`` (default: :func:`default_url`)."""
    return Store(await open_backend(url or default_url()))


__all__ = [
    "Compacted",
    "Compare",
    "Conflict",
    "CorruptStore",
    "Delete",
    "Election",
    "EtcdConfig",
    "Event",
    "EventKind",
    "FileConfig",
    "Get",
    "GuardFailed",
    "InvalidRecord",
    "KeyValue",
    "LeaderInfo",
    "Leadership",
    "LeadershipLost",
    "Lease",
    "LeaseNotFound",
    "OpResult",
    "OutcomeUnknown",
    "Problem",
    "Put",
    "RangeResult",
    "Resync",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "TxnResult",
    "Watch",
    "WatchCursor",
    "default_url",
    "open_backend",
    "open_store",
    "parse_url",
]
