"""ssh:// URLs: what they name, and ValueError saying what is wrong with a bad one."""

from __future__ import annotations

import getpass

import pytest

from spdkvirt.spdk.transport import parse_address
from spdkvirt.ssh.url import SshTarget, parse_ssh_url


def test_full_url() -> None:
    t = parse_ssh_url("ssh://root@10.0.0.5:2222/var/tmp/spdk.sock?via=forced")
    assert t == SshTarget("root", "10.0.0.5", 2222, "/var/tmp/spdk.sock", "forced")
    assert t.host_key_name == "[10.0.0.5]:2222"
    assert str(t) == "ssh://root@10.0.0.5:2222/var/tmp/spdk.sock?via=forced"


def test_defaults_port_user_and_via() -> None:
    t = parse_ssh_url("ssh://node1/var/tmp/spdk.sock")
    assert (t.user, t.port, t.via) == (getpass.getuser(), 22, "auto")
    assert t.host_key_name == "node1"
    assert parse_ssh_url("ssh://a@h/s.sock?via=streamlocal").via == "streamlocal"


def test_ipv6_and_escaped_path() -> None:
    t = parse_ssh_url("ssh://admin@[fd00::1]:22/run/spdk%20a.sock")
    assert (t.host, t.port, t.path) == ("fd00::1", 22, "/run/spdk a.sock")
    assert t.host_key_name == "fd00::1"
    assert parse_ssh_url(t.url()) == t


def test_path_optional_for_commands() -> None:
    assert parse_ssh_url("ssh://root@h:2200", require_path=False).path == ""


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("ssh://root@h:2222", "no socket path"),
        ("ssh://root@h/", "no socket path"),
        ("ssh:///var/tmp/spdk.sock", "no host"),
        ("ssh://root@h:99999/s.sock", "bad port"),
        ("ssh://root@h:x/s.sock", "bad port"),
        ("ssh://root:secret@h/s.sock", "passwords are not accepted"),
        ("ssh://root@h/s.sock?via=telnet", "via must be one of"),
        ("ssh://root@h/s.sock?via=forced&via=streamlocal", "via must be one of"),
        ("ssh://root@h/s.sock?mode=x", "unknown query parameter(s) mode"),
        ("ssh://root@h/s.sock#frag", "unexpected fragment"),
        ("http://h/s.sock", "not an ssh:// URL"),
    ],
)
def test_bad_urls(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_ssh_url(url)
    assert complaint in str(info.value)
    assert "secret" not in str(info.value)


def test_parse_address_hands_out_an_ssh_transport() -> None:
    transport = parse_address("ssh://root@127.0.0.1:2222/var/tmp/spdk.sock")
    assert type(transport).__name__ == "SshTransport"
    assert str(transport) == "ssh://root@127.0.0.1:2222/var/tmp/spdk.sock"
    with pytest.raises(ValueError, match="no socket path"):
        parse_address("ssh://root@127.0.0.1:2222")
