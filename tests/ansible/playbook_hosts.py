"""Hosts for the collection's playbook test: network namespaces on this machine, each running sshd.

``PlaybookHosts.start(workdir)`` creates a private network (``tests.cluster.netns``) with one
namespace per host, starts a real sshd inside each on the host's own address (``tests.support.sshd``,
with its own host key, client key and known_hosts), and lays out per host a path prefix
``workdir/hosts/<name>`` under which the roles put everything they write (config, state, run, log and
unit directories: the hosts share this machine's filesystem). ``write_inventory`` writes an Ansible
inventory reaching them over SSH as root with the repository's virtualenv as the Python, and
``ansible_env`` the environment that makes ``spdkvirt.cluster`` resolve to this repository's
``ansible/`` (a symlink in ``workdir/collections``).

``close`` (idempotent; from ``finally``) signals the processes the roles started (read from the
pidfiles of the roles' non-systemd fallback, and only when the pid is still the process recorded
there), stops the sshds, and removes the network, which SIGKILLs whatever is left in the namespaces.

For a look by hand: ``python -m tests.ansible.playbook_hosts WORKDIR`` sets the hosts up, writes
``WORKDIR/inventory.yml`` and ``WORKDIR/env.sh``, and waits for Ctrl-C to tear them down.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.netns import Network
from tests.support.procfs import start_time
from tests.support.sshd import Sshd, ssh_unavailable_reason

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible"
VENV = REPO / ".venv"
PYTHON = VENV / "bin" / "python"
ANSIBLE_PLAYBOOK = VENV / "bin" / "ansible-playbook"
NAMES = ("n1", "n2", "n3")


def missing() -> list[str]:
    """Why the playbook test cannot run on this machine (empty when it can)."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("network namespaces and sshd need root")
    if not os.access(ANSIBLE_PLAYBOOK, os.X_OK):
        problems.append(f"{ANSIBLE_PLAYBOOK} is missing (pip install ansible-core)")
    if shutil.which("ip") is None:
        problems.append("iproute2 (ip netns) is not installed")
    if shutil.which("etcd") is None and not os.access("/usr/bin/etcd", os.X_OK):
        problems.append("etcd is not installed (apt-get install etcd-server)")
    reason = ssh_unavailable_reason()
    if reason is not None and reason not in problems:
        problems.append(reason)
    return problems


@dataclass
class PlaybookHosts:
    """The namespaces, their sshds and the per-host prefixes; see the module docstring."""

    workdir: Path
    network: Network
    sshds: dict[str, Sshd] = field(default_factory=dict)
    _closed: bool = False

    @classmethod
    def start(cls, workdir: str | Path, names: Sequence[str] = NAMES) -> PlaybookHosts:
        """Create the network and start sshd in every namespace; on failure undo what was done."""
        work = Path(workdir).resolve()
        work.mkdir(parents=True, exist_ok=True)
        network = Network.create(list(names))
        hosts = cls(work, network)
        try:
            if work.name.startswith(("spdkvirt-", "svk")):
                network.adopt(path=work)
            for name in names:
                hosts.prefix(name).mkdir(parents=True, exist_ok=True)
                hosts.sshds[name] = Sshd.start(
                    work / "ssh" / name,
                    address=network.address(name),
                    port=22,
                    netns=network.namespace(name),
                    forced_socket=None,
                    user="root",
                )
            hosts._link_collection()
        except BaseException:
            hosts.close()
            raise
        return hosts

    # layout

    @property
    def names(self) -> list[str]:
        return self.network.names

    def prefix(self, name: str) -> Path:
        """Where host ``name`` keeps everything the roles write."""
        return self.workdir / "hosts" / name

    def address(self, name: str) -> str:
        return self.network.address(name)

    def run_dir(self, name: str) -> Path:
        return self.prefix(name) / "run" / "spdkvirt"

    def config_dir(self, name: str) -> Path:
        return self.prefix(name) / "etc" / "spdkvirt"

    @property
    def collections(self) -> Path:
        return self.workdir / "collections"

    def _link_collection(self) -> None:
        parent = self.collections / "ansible_collections" / "spdkvirt"
        parent.mkdir(parents=True, exist_ok=True)
        link = parent / "cluster"
        if not link.is_symlink():
            link.symlink_to(COLLECTION, target_is_directory=True)

    # inventory and environment

    def host_vars(self, name: str) -> dict[str, Any]:
        """Connection settings and path prefix of one host."""
        sshd = self.sshds[name]
        ssh_args = " ".join(
            [
                f"-o UserKnownHostsFile={sshd.known_hosts}",
                "-o GlobalKnownHostsFile=/dev/null",
                "-o StrictHostKeyChecking=yes",
                "-o IdentitiesOnly=yes",
                "-o BatchMode=yes",
            ]
        )
        return {
            "ansible_host": self.address(name),
            "ansible_port": sshd.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(sshd.key_path),
            "ansible_ssh_common_args": ssh_args,
            "spdkvirt_prefix": str(self.prefix(name)),
        }

    def write_inventory(
        self,
        path: str | Path,
        groups: Mapping[str, Sequence[str]],
        *,
        common: Mapping[str, Any] | None = None,
        per_host: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Path:
        """An inventory with every host (its connection and prefix), the groups, and more variables."""
        hosts = {n: {**self.host_vars(n), **dict((per_host or {}).get(n, {}))} for n in self.names}
        base: dict[str, Any] = {
            "ansible_python_interpreter": str(PYTHON),
            "ansible_become": False,
        }
        inventory = {
            "all": {
                "vars": {**base, **dict(common or {})},
                "hosts": hosts,
                "children": {g: {"hosts": dict.fromkeys(members)} for g, members in groups.items()},
            }
        }
        out = Path(path)
        out.write_text(yaml.safe_dump(inventory, sort_keys=False))
        return out

    def ansible_env(self) -> dict[str, str]:
        """Environment for ansible-playbook: this collection, this repository's tools, no user config."""
        config = self.workdir / "ansible.cfg"
        local_tmp = self.workdir / "ansible-tmp"
        local_tmp.mkdir(exist_ok=True)
        config.write_text(
            "\n".join(
                [
                    "[defaults]",
                    f"collections_path = {self.collections}",
                    f"local_tmp = {local_tmp}",
                    f"remote_tmp = {self.workdir / 'remote-tmp'}",
                    "host_key_checking = True",
                    "retry_files_enabled = False",
                    "forks = 10",
                    "timeout = 30",
                    "",
                    "[ssh_connection]",
                    "pipelining = True",
                    f"control_path_dir = {self.workdir / 'cp'}",
                    "",
                ]
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(
            {
                "ANSIBLE_CONFIG": str(config),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
                "PATH": f"{VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
                "PYTHONWARNINGS": "ignore",
            }
        )
        return env

    # what the roles started

    def service_pidfiles(self) -> list[Path]:
        return sorted(p for n in self.names for p in self.run_dir(n).glob("*.pid"))

    def service_pids(self) -> dict[str, int]:
        """``host/service -> pid`` of every service the roles started that is still running."""
        found: dict[str, int] = {}
        for name in self.names:
            for state_file in sorted(self.run_dir(name).glob("*.pid.json")):
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    state = json.loads(state_file.read_text())
                    pid = int(state["pid"])
                    if start_time(pid) == state["start_time"]:
                        found[f"{name}/{state_file.name.removesuffix('.pid.json')}"] = pid
        return found

    def stop_services(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL, the processes the roles started (only those still the recorded ones)."""
        recorded = {pid: start_time(pid) for pid in self.service_pids().values()}
        for pid in recorded:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(start_time(p) == t for p, t in recorded.items()):
            time.sleep(0.05)
        for pid, started in recorded.items():
            if start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    # teardown

    def close(self) -> None:
        """Stop the services and sshds, remove the network (idempotent)."""
        if self._closed:
            return
        errors: list[BaseException] = []
        steps = [self.stop_services, *(s.stop for s in self.sshds.values()), self.network.teardown]
        for step in steps:
            try:
                step()
            except Exception as e:  # every step runs; the first error is raised at the end
                errors.append(e)
        self._closed = True
        if errors:
            raise errors[0]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.ansible.playbook_hosts WORKDIR", file=sys.stderr)
        return 2
    hosts = PlaybookHosts.start(argv[0])
    try:
        inventory = hosts.write_inventory(
            hosts.workdir / "inventory.yml", {"etcd": hosts.names, "storage": hosts.names, "controllers": hosts.names}
        )
        env_file = hosts.workdir / "env.sh"
        env = hosts.ansible_env()
        env_file.write_text("".join(f"export {k}={v!r}\n" for k, v in env.items() if k.startswith("ANSIBLE_")))
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        print(f"inventory: {inventory}\nenvironment: {env_file}\nCtrl-C to tear down", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        hosts.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
