"""Fixtures for the contract suite: fresh SPDK targets (simulator or real) and clients on them."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from spdkvirt.spdk.client import SpdkClient
from tests.conftest import spdk_kinds
from tests.support.targets import TargetProcess, make_target


@pytest.fixture(params=spdk_kinds())
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start_target(kind: str, tmp_path: Path) -> Iterator[Callable[[str], TargetProcess]]:
    """Start fresh targets of this run's kind by name; all are killed at the end."""
    started: list[TargetProcess] = []

    def start(name: str) -> TargetProcess:
        tp = make_target(kind, tmp_path, name)
        started.append(tp)
        tp.start()
        return tp

    yield start
    for tp in started:
        tp.kill()


@pytest.fixture
async def spdk(start_target: Callable[[str], TargetProcess]) -> AsyncIterator[SpdkClient]:
    """A client on one fresh, empty target."""
    tp = start_target("a")
    async with SpdkClient(tp.socket_path, timeout=30) as client:
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
