"""Fixtures of the store suites: a store of each backend, and etcd clusters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spdkvirt.store import Store, open_store
from tests.etcd_cluster import etcd1, etcd3, etcd3_shared, etcd_url, namespace_for

__all__ = ["etcd1", "etcd3", "etcd3_shared"]

BACKENDS = ["file", pytest.param("etcd", marks=pytest.mark.etcd)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty store: a file store in a temp dir, or a fresh namespace on a 3-member etcd."""
    if request.param == "file":
        return f"file://{tmp_path}/store"
    cluster = request.getfixturevalue("etcd3_shared")
    return etcd_url(cluster, namespace_for(request))


@pytest.fixture
def backend_name(store_url: str) -> str:
    return store_url.split(":", 1)[0]


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = await open_store(store_url)
    try:
        yield s
    finally:
        await s.close()
