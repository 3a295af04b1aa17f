"""Tests that need machine features (root, network namespaces, sshd, etcd): skip without them, but
under CI (``CI=true``) fail instead, so a CI machine that lost a tool cannot pass by skipping."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest


def require(problems: Iterable[str | None], what: str) -> None:
    """Skip (fail under CI) when ``problems`` holds any reason; ``what`` names the tests."""
    found = [p for p in problems if p]
    if not found:
        return
    msg = "; ".join(found)
    if os.environ.get("CI") == "true":
        pytest.fail(f"{msg}: CI must run {what}", pytrace=False)
    pytest.skip(msg)
