"""Fixtures of the cluster suites: ``cluster_env`` (root, ``ip`` and etcd are there) and ``cluster``.

Without them the tests are skipped, except under CI=true, where they fail: CI must run them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.store.localetcd import etcd_binary
from tests.cluster.harness import Cluster, ClusterEnv, missing_tools
from tests.cluster.netns import Network
from tests.support.needs import require


@pytest.fixture(scope="session")
def cluster_env() -> ClusterEnv:
    """Skip (or, under CI=true, fail) unless this machine can run cluster tests."""
    require(missing_tools(), "the cluster tests")
    ip, etcd = shutil.which("ip"), etcd_binary()
    assert ip is not None and etcd is not None
    return ClusterEnv(ip, etcd, tuple(Network.reap_stale()))


@pytest.fixture
def cluster(cluster_env: ClusterEnv, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """``cluster(nodes=("n1", "n2"), etcd_members=3, ...)`` starts a Cluster (keyword arguments as
    ``Cluster``) in a fresh directory of the test's tmp_path; every one is closed when the test ends."""
    made: list[Cluster] = []

    def make(**kwargs: Any) -> Cluster:
        c = Cluster(tmp_path / f"cluster{len(made)}", **kwargs)
        made.append(c)
        return c.start()

    yield make
    errors: list[BaseException] = []
    for c in reversed(made):
        try:
            c.close()
        except Exception as e:
            errors.append(e)
    if errors:
        raise errors[0]
