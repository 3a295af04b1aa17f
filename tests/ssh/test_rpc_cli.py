"""`spdkvirt rpc --socket ssh://...` runs an rpc.py command over SSH, in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.ssh.conftest import needs_sshd
from tests.support.sshd import Sshd
from tests.support.targets import TargetProcess

pytestmark = needs_sshd


def spdkvirt(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SPDKVIRT_", "SSH_AUTH_SOCK"))}
    environ.update(HOME=str(home), **env)
    return subprocess.run([sys.executable, "-m", "spdkvirt.cli.main", *args], capture_output=True, text=True,
                          env=environ, timeout=60, check=False)  # fmt: skip


def test_rpc_over_ssh_flags(sshd: Sshd, sim: TargetProcess, tmp_path: Path) -> None:
    for forced in (False, True):
        ssh = ["--ssh-identity", str(sshd.identity(forced=forced)), "--ssh-known-hosts", str(sshd.known_hosts)]
        out = spdkvirt(["rpc", "--socket", sshd.url(sim.socket_path), *ssh, "spdk_get_version"], tmp_path)
        assert out.returncode == 0, out.stderr
        assert "version" in json.loads(out.stdout)


def test_rpc_over_ssh_environment(sshd: Sshd, sim: TargetProcess, tmp_path: Path) -> None:
    env = {"SPDKVIRT_SSH_IDENTITY": str(sshd.key_path), "SPDKVIRT_SSH_KNOWN_HOSTS": str(sshd.known_hosts)}
    out = spdkvirt(["rpc", "--socket", sshd.url(sim.socket_path, forced=True), "bdev_get_bdevs"], tmp_path, **env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_unknown_host_then_opt_in(sshd: Sshd, sim: TargetProcess, tmp_path: Path) -> None:
    args = ["rpc", "--socket", sshd.url(sim.socket_path), "--ssh-identity", str(sshd.key_path)]
    refused = spdkvirt([*args, "spdk_get_version"], tmp_path)
    assert refused.returncode == 1
    assert "not in known_hosts" in refused.stderr and "--ssh-accept-new-host" in refused.stderr
    accepted = spdkvirt([*args, "--ssh-accept-new-host", "spdk_get_version"], tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    assert (tmp_path / ".ssh" / "known_hosts").read_text().split()[1:] == sshd.host_public_key.split()
    again = spdkvirt([*args, "spdk_get_version"], tmp_path)
    assert again.returncode == 0, again.stderr
