"""run_command: exit status, output, input, deadline."""

from __future__ import annotations

import time

import pytest

from spdkvirt.ssh.command import run_command
from spdkvirt.ssh.errors import CommandTimeout, SshAuthError, SshConnectError
from spdkvirt.ssh.url import parse_ssh_url
from tests.ssh.conftest import needs_sshd, options_for
from tests.support.sshd import Sshd, free_port

pytestmark = needs_sshd


async def test_status_and_output(sshd: Sshd) -> None:
    result = await run_command(sshd.url(), "echo out; echo err >&2; exit 3", options=options_for(sshd), timeout=10)
    assert (result.exit_status, result.stdout, result.stderr, result.ok) == (3, b"out\n", b"err\n", False)


async def test_argv_is_quoted_and_stdin_is_fed(sshd: Sshd) -> None:
    target = parse_ssh_url(sshd.url(), require_path=False)
    result = await run_command(target, ["sh", "-c", 'cat; echo "$0"', "a b; c"], options=options_for(sshd),
                               timeout=10, stdin=b"in\n")  # fmt: skip
    assert result.ok and result.stdout == b"in\na b; c\n"


async def test_deadline(sshd: Sshd) -> None:
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout, match="did not finish"):
        await run_command(sshd.url(), "sleep 30", options=options_for(sshd), timeout=1)
    assert time.monotonic() - t0 < 5


async def test_large_output_on_both_streams(sshd: Sshd) -> None:
    cmd = "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2"
    result = await run_command(sshd.url(), cmd, options=options_for(sshd), timeout=30)
    assert len(result.stdout) == len(result.stderr) == 3_000_000


async def test_wrong_key_and_nobody_listening(sshd: Sshd) -> None:
    from dataclasses import replace

    with pytest.raises(SshAuthError, match="authentication failed"):
        await run_command(sshd.url(), "true", options=replace(options_for(sshd), identities=(str(sshd.host_key_path),)),
                          timeout=10)  # fmt: skip
    with pytest.raises(SshConnectError, match="cannot reach"):
        await run_command(f"ssh://root@127.0.0.1:{free_port()}", "true", options=options_for(sshd), timeout=10)
