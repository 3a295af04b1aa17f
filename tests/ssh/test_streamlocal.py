"""The hand-built direct-streamlocal@openssh.com channel against a real OpenSSH server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spdkvirt.ssh.connection import get_connection
from spdkvirt.ssh.errors import ChannelOpenRefused
from spdkvirt.ssh.streamlocal import open_streamlocal
from spdkvirt.ssh.url import parse_ssh_url
from tests.ssh.conftest import needs_sshd, options_for
from tests.support.sshd import Sshd
from tests.support.targets import TargetProcess

pytestmark = needs_sshd


def test_server_accepts_the_channel(sshd: Sshd, sim: TargetProcess) -> None:
    conn = get_connection(parse_ssh_url(sshd.url()), options_for(sshd))
    chan = open_streamlocal(conn.transport, sim.socket_path, timeout=5)
    try:
        chan.settimeout(5)
        chan.sendall(b'{"jsonrpc":"2.0","method":"spdk_get_version","id":7}')
        reply = json.loads(chan.recv(65536))
        assert reply["id"] == 7 and "version" in reply["result"]
    finally:
        chan.close()


def test_no_such_socket_is_a_typed_refusal(sshd: Sshd, tmp_path: Path) -> None:
    conn = get_connection(parse_ssh_url(sshd.url()), options_for(sshd))
    missing = str(tmp_path / "missing.sock")
    with pytest.raises(ChannelOpenRefused) as info:
        open_streamlocal(conn.transport, missing, timeout=5)
    assert info.value.kind == "direct-streamlocal@openssh.com"
    assert info.value.code == ChannelOpenRefused.CONNECT_FAILED
    assert missing in str(info.value)
    assert conn.alive  # a refused channel leaves the connection usable
    open_streamlocal(conn.transport, sshd.forced_socket or "", timeout=5).close()


def test_forwarding_not_permitted_is_a_typed_refusal(sshd: Sshd, sim: TargetProcess) -> None:
    # the forced-command key carries `restrict`: no forwarding of any kind
    conn = get_connection(parse_ssh_url(sshd.url()), options_for(sshd, forced=True))
    with pytest.raises(ChannelOpenRefused) as info:
        open_streamlocal(conn.transport, sim.socket_path, timeout=5)
    assert "refused direct-streamlocal@openssh.com channel to " + sim.socket_path in str(info.value)
    assert "refused streamlocal port forward" in sshd.log_path.read_text()
