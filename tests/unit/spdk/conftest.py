"""Fixtures for the SPDK adapter's unit tests: a scripted fake server and a task-leak check."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .fakes import FakeServer


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    # UNIX socket paths are limited to ~107 bytes: not under pytest's tmp_path
    workdir = Path(tempfile.mkdtemp(prefix="spdkvirt-t"))
    srv = FakeServer(str(workdir / "spdk.sock"))
    await srv.start()
    try:
        yield srv
        await srv.stop()
        current = asyncio.current_task()
        leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        assert not leaked, f"tasks left running: {leaked}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
