"""Host keys checked against known_hosts: known ok, unknown refused (or accepted when opted in), changed refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from spdkvirt.ssh.command import run_command
from spdkvirt.ssh.connection import close_connections
from spdkvirt.ssh.errors import HostKeyChanged, UnknownHostKey
from tests.ssh.conftest import needs_sshd, options_for
from tests.support.sshd import Sshd, keygen

pytestmark = needs_sshd


def fingerprint_of(public_line: str) -> str:
    import base64
    import hashlib

    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


async def test_known_host(sshd: Sshd) -> None:
    result = await run_command(sshd.url(), "echo ok", options=options_for(sshd), timeout=10)
    assert result.stdout == b"ok\n"


async def test_unknown_host_refused_with_a_clear_error(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    options = replace(options_for(sshd), known_hosts=(str(empty),))
    with pytest.raises(UnknownHostKey) as info:
        await run_command(sshd.url(), "true", options=options, timeout=10)
    err = info.value
    name = f"[127.0.0.1]:{sshd.port}"
    assert err.host == name and err.key_type == "ssh-ed25519"
    assert err.fingerprint == fingerprint_of(sshd.host_public_key)
    text = str(err)
    for part in (name, "ssh-ed25519", err.fingerprint, "--ssh-accept-new-host", "SPDKVIRT_SSH_ACCEPT_NEW_HOST=1"):
        assert part in text
    assert not empty.exists()


async def test_opt_in_accepts_and_records(sshd: Sshd, tmp_path: Path) -> None:
    recorded = tmp_path / "dir" / "known_hosts"
    options = replace(options_for(sshd), known_hosts=(str(recorded),), accept_new_host=True)
    assert (await run_command(sshd.url(), "true", options=options, timeout=10)).ok
    line = recorded.read_text()
    assert line == f"[127.0.0.1]:{sshd.port} {sshd.host_public_key}\n"
    assert recorded.stat().st_mode & 0o777 == 0o600
    close_connections()
    # recorded: now known without opting in
    strict = replace(options, accept_new_host=False)
    assert (await run_command(sshd.url(), "true", options=strict, timeout=10)).ok
    assert recorded.read_text() == line


@pytest.mark.parametrize("accept_new_host", [False, True])
async def test_changed_key_always_refused(sshd: Sshd, tmp_path: Path, accept_new_host: bool) -> None:
    other = keygen(tmp_path / "other_host_key", "other")
    stale = tmp_path / "stale_known_hosts"
    stale.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other.split()[:2])}\n")
    options = replace(options_for(sshd), known_hosts=(str(stale),), accept_new_host=accept_new_host)
    with pytest.raises(HostKeyChanged) as info:
        await run_command(sshd.url(), "true", options=options, timeout=10)
    assert info.value.fingerprint == fingerprint_of(sshd.host_public_key)
    assert info.value.expected == fingerprint_of(other)
    assert "HOST KEY CHANGED" in str(info.value)
    assert len(stale.read_text().splitlines()) == 1
