"""A simulator and a real sshd on 127.0.0.1 whose forced-command key reaches the simulator's socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spdkvirt.ssh.connection import close_connections
from spdkvirt.ssh.options import SshOptions, set_default_options
from tests.support.sshd import Sshd, ssh_unavailable_reason
from tests.support.targets import TargetProcess, make_target

REASON = ssh_unavailable_reason()
needs_sshd = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(autouse=True)
def fresh_ssh_state() -> Iterator[None]:
    """Every test starts and ends without shared SSH connections or process-wide options."""
    yield
    set_default_options(None)
    close_connections()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[TargetProcess]:
    target = make_target("sim", tmp_path, "sim")
    target.start()
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture
def sshd(tmp_path: Path, sim: TargetProcess) -> Iterator[Sshd]:
    if REASON is not None:
        pytest.skip(REASON)
    server = Sshd.start(tmp_path / "sshd", forced_socket=sim.socket_path)
    try:
        yield server
    finally:
        server.stop()


def options_for(server: Sshd, *, forced: bool = False, **more: object) -> SshOptions:
    """Options that log in to `server` with its own key and known_hosts (nothing from ~/.ssh)."""
    return SshOptions(
        identities=(str(server.identity(forced=forced)),),
        known_hosts=(str(server.known_hosts),),
        connect_timeout=5.0,
        **more,  # type: ignore[arg-type]
    )
