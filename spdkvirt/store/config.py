"""Backend configurations, as parsed from store URLs (kept free of heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SNAPSHOT_BYTES = 8 << 20
DEFAULT_HISTORY = 10_000


@dataclass(frozen=True)
class FileConfig:
    path: Path
    snapshot_bytes: int = DEFAULT_SNAPSHOT_BYTES
    history: int = DEFAULT_HISTORY


@dataclass(frozen=True)
class EtcdConfig:
    """How to reach an etcd cluster (parsed from ``etcd://`` URLs by :mod:`spdkvirt.store.url`)."""

    endpoints: tuple[tuple[str, int], ...]
    namespace: str = ""
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    #: seconds one request may take
    timeout: float = 5.0
    #: seconds to keep retrying (failing over) before giving up
    retry_timeout: float = 15.0

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError("etcd: at least one endpoint is needed")
        if (self.user is None) != (self.password is None):
            raise ValueError("etcd: user and password go together")
