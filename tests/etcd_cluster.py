"""Pytest fixtures running real etcd clusters on loopback (Debian's etcd-server), for any suite.

Import the fixtures into a conftest.py: ``from tests.etcd_cluster import etcd1, etcd3, etcd3_shared``.
Without etcd the tests are skipped, except under CI=true, where they fail: CI must run them.
Every cluster lives on tmpfs and is killed (only its own pids) and removed when the fixture ends.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from spdkvirt.store.localetcd import LocalEtcd, etcd_binary

#: URL options for tests: short request timeout so a lost leader is noticed quickly
TEST_OPTIONS = "timeout=2&retry_timeout=20"


def require_etcd() -> None:
    """Skip (or, under CI=true, fail) when etcd is not installed."""
    if etcd_binary() is None:
        msg = "etcd is not installed (apt-get install etcd-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{msg}: CI must run the etcd tests", pytrace=False)
        pytest.skip(msg)


def start_cluster(size: int, **kwargs: Any) -> LocalEtcd:
    require_etcd()
    return LocalEtcd(size, **kwargs).start()


def etcd_url(cluster: LocalEtcd, namespace: str = "") -> str:
    url = cluster.url(namespace)
    return url + ("&" if "?" in url else "?") + TEST_OPTIONS


def namespace_for(request: pytest.FixtureRequest) -> str:
    """A key namespace unique to the requesting test, so tests can share one cluster."""
    return "t-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]


def running_cluster(size: int) -> Iterator[LocalEtcd]:
    """A started cluster of `size` members, stopped when the generator ends."""
    cluster = start_cluster(size)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def etcd3_shared() -> Iterator[LocalEtcd]:
    """One 3-member cluster for the whole session (use a namespace per test; never kill members)."""
    yield from running_cluster(3)


@pytest.fixture
def etcd3() -> Iterator[LocalEtcd]:
    """A fresh 3-member cluster for one test (free to kill and restart members)."""
    yield from running_cluster(3)


@pytest.fixture
def etcd1() -> Iterator[LocalEtcd]:
    """A fresh 1-member cluster for one test."""
    yield from running_cluster(1)
