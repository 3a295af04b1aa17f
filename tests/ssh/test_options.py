"""SshOptions from the environment and from the command line's --ssh-* flags."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from spdkvirt.cli.ssh_flags import add_ssh_flags, apply_ssh_flags
from spdkvirt.ssh.options import DEFAULT_KNOWN_HOSTS, SshOptions, default_options, set_default_options


def test_defaults() -> None:
    o = SshOptions()
    assert o.identities == () and not o.accept_new_host
    assert o.known_hosts_files == tuple(os.path.expanduser(p) for p in DEFAULT_KNOWN_HOSTS)


def test_from_env() -> None:
    o = SshOptions.from_env(
        {
            "SPDKVIRT_SSH_IDENTITY": "/k/one:/k/two",
            "SPDKVIRT_SSH_KNOWN_HOSTS": "/etc/kh",
            "SPDKVIRT_SSH_ACCEPT_NEW_HOST": "1",
            "SPDKVIRT_SSH_CONNECT_TIMEOUT": "2.5",
        }
    )
    assert o == SshOptions(("/k/one", "/k/two"), ("/etc/kh",), True, 2.5)
    assert SshOptions.from_env({}) == SshOptions()
    with pytest.raises(ValueError, match="SPDKVIRT_SSH_ACCEPT_NEW_HOST"):
        SshOptions.from_env({"SPDKVIRT_SSH_ACCEPT_NEW_HOST": "maybe"})
    with pytest.raises(ValueError, match="SPDKVIRT_SSH_CONNECT_TIMEOUT"):
        SshOptions.from_env({"SPDKVIRT_SSH_CONNECT_TIMEOUT": "soon"})


def test_flags_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPDKVIRT_SSH_IDENTITY", "/env/key")
    monkeypatch.setenv("SPDKVIRT_SSH_KNOWN_HOSTS", "/env/kh")
    parser = argparse.ArgumentParser()
    add_ssh_flags(parser)
    args = parser.parse_args(["--ssh-identity", "/a", "--ssh-identity", "/b", "--ssh-accept-new-host"])
    try:
        o = apply_ssh_flags(args)
        assert o == SshOptions(("/a", "/b"), ("/env/kh",), True)
        assert default_options() == o
    finally:
        set_default_options(None)
    assert default_options() == SshOptions(("/env/key",), ("/env/kh",))


def test_flags_and_options_do_not_import_paramiko() -> None:
    code = (
        "import sys, spdkvirt.cli.ssh_flags, spdkvirt.spdk.client, spdkvirt.cli.main; print('paramiko' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
