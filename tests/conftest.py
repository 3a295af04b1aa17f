"""Shared pytest setup: which SPDK targets the SPDK-facing suites run against."""

from __future__ import annotations

import os

import pytest

# etcd's client library (gRPC) must not install fork handlers in the test process: a child started
# while one of its threads holds a lock could hang before it runs its command
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from tests.support.targets import REAL_ENV, real_command


def spdk_kinds() -> list[pytest.param]:  # type: ignore[valid-type]
    """The simulator always; a real spdk_tgt when SPDKVIRT_SPDK_TGT names one."""
    real = pytest.param(
        "real",
        marks=pytest.mark.skipif(real_command() is None, reason=f"{REAL_ENV} does not name a real spdk_tgt"),
        id="real",
    )
    return [pytest.param("sim", id="sim"), real]
