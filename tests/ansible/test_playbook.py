"""The collection's site.yml, for real, against three hosts on this machine.

Each host is a network namespace running sshd on its own address (``tests/ansible/playbook_hosts.py``).
Ansible reaches them over SSH as root (their own keys and known_hosts, strict host key checking) and
runs the roles: a 3-member etcd cluster, a simulated SPDK target (``spdkvirt-sim``, named as the SPDK
binary) and a node agent on each host with two sparse device files, and controllers on two of them,
serving the admin API over HTTP with the token the role generated. Paths are prefixed per host (they
share the filesystem), services run through the roles' non-systemd fallback (no systemd here).

Then: a second run changes nothing on any host, and the volume playbook (module
``spdkvirt.cluster.volume``) creates a mirrored volume (changed), leaves it alone when run again (not
changed) and deletes it (changed). Skipped without root, ansible-playbook, sshd, etcd or ``ip``
(failed instead under CI=true: CI must run it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ansible.playbook_hosts import VENV, PlaybookHosts, missing
from tests.ansible.playbook_run import PlaybookRun, run_playbook
from tests.cluster.netns import Network
from tests.support.needs import require
from tests.support.targets import ping

pytestmark = [pytest.mark.slow, pytest.mark.etcd]

CONTROLLERS = ("n1", "n2")
API_PORT = 8080
DEVICES = 2
DEVICE_SIZE = "256M"
SERVICES = ("spdkvirt-etcd", "spdkvirt-spdk", "spdkvirt-agent")


@dataclass
class Deployed:
    """The hosts, the inventory and the first run of site.yml."""

    hosts: PlaybookHosts
    inventory: Path
    first: PlaybookRun

    def api_urls(self) -> list[str]:
        return [f"http://{self.hosts.address(n)}:{API_PORT}" for n in CONTROLLERS]

    @property
    def token_file(self) -> Path:
        return self.hosts.config_dir(CONTROLLERS[0]) / "api-token"

    def api(self, *args: str) -> Any:
        """``spdkvirt --json ARGS`` against the leading controller (over HTTP, with the token)."""
        errors = []
        for url in self.api_urls():
            cmd = [str(VENV / "bin" / "spdkvirt"), "--api", url, "--token-file", str(self.token_file), "--json"]
            proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=30, check=False)
            if proc.returncode == 0:
                return json.loads(proc.stdout)
            errors.append(f"{url}: {proc.stderr.strip()[-300:]}")
        raise AssertionError("no controller answered: " + "; ".join(errors))


def write_inventory(hosts: PlaybookHosts) -> Path:
    names = hosts.names
    common = {
        "spdkvirt_venv": str(VENV),
        "spdkvirt_package": str(VENV.parent),
        "spdk_target_binary": str(VENV / "bin" / "spdkvirt-sim"),
        "spdk_target_hugepages": 0,
        "spdkvirt_api_url": [f"http://{hosts.address(n)}:{API_PORT}" for n in CONTROLLERS],
    }
    per_host: dict[str, dict[str, Any]] = {}
    for n in names:
        device_dir = hosts.prefix(n) / "var" / "lib" / "spdkvirt" / "devices"
        per_host[n] = {
            "agent_devices": [
                {"id": f"d{i}", "path": str(device_dir / f"d{i}.img"), "size": DEVICE_SIZE} for i in range(DEVICES)
            ],
            "controller_http": f"{hosts.address(n)}:{API_PORT}",
            "spdkvirt_api_token_file": str(hosts.config_dir(n) / "api-token"),
        }
    groups = {"etcd": names, "storage": names, "controllers": list(CONTROLLERS)}
    return hosts.write_inventory(hosts.workdir / "inventory.yml", groups, common=common, per_host=per_host)


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    require(missing(), "the playbook test")
    Network.reap_stale()
    workdir = Path(tempfile.mkdtemp(prefix="spdkvirt-ansible-"))
    hosts: PlaybookHosts | None = None
    try:
        hosts = PlaybookHosts.start(workdir)
        inventory = write_inventory(hosts)
        first = run_playbook(hosts, inventory, "site.yml")
        yield Deployed(hosts, inventory, first)
    finally:
        if hosts is not None:
            hosts.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _etcd_members(address: str) -> list[str]:
    req = urllib.request.Request(f"http://{address}:2379/v3/cluster/member/list", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = json.loads(resp.read())
    return sorted(str(m.get("name")) for m in body.get("members", []))


def _namespace_of(pid: int) -> str:
    out = subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def test_site_deploys_etcd_targets_agents_and_controllers(deployed: Deployed) -> None:
    run, hosts = deployed.first, deployed.hosts
    assert run.ok, run.describe()
    assert set(run.stats) == set(hosts.names), run.describe()

    # every service runs inside its own host's namespace, from the pidfile the fallback keeps
    pids = hosts.service_pids()
    expected = {f"{n}/{s}" for n in hosts.names for s in SERVICES} | {f"{n}/spdkvirt-controller" for n in CONTROLLERS}
    assert set(pids) == expected, pids
    for key, pid in pids.items():
        assert _namespace_of(pid) == hosts.network.namespace(key.split("/")[0]), key

    # etcd: one cluster of three members, seen from every member
    for n in hosts.names:
        assert _etcd_members(hosts.address(n)) == sorted(hosts.names)

    # three SPDK targets (the simulator), each on its host's socket
    for n in hosts.names:
        assert ping(str(hosts.run_dir(n) / "spdk.sock")), n

    # the token file is owner-only, and the same on both controllers
    tokens = {(hosts.config_dir(n) / "api-token").read_text() for n in CONTROLLERS}
    assert len(tokens) == 1 and len(tokens.pop().strip()) >= 32
    assert all((hosts.config_dir(n) / "api-token").stat().st_mode & 0o777 == 0o600 for n in CONTROLLERS)

    # the agents registered with their devices, through the API of the leading controller
    deadline = time.monotonic() + 60
    while True:
        nodes = {x["node_id"]: x for x in deployed.api("node", "list")}
        devices = deployed.api("device", "list")
        per_node = {n: sorted(d["device_id"] for d in devices if d["node"] == n) for n in hosts.names}
        ready = set(nodes) == set(hosts.names) and all(x["alive"] and x["state"] == "up" for x in nodes.values())
        if ready and all(v == [f"d{i}" for i in range(DEVICES)] for v in per_node.values()):
            break
        assert time.monotonic() < deadline, (nodes, per_node)
        time.sleep(0.5)
    assert {n: x["address"] for n, x in nodes.items()} == {n: hosts.address(n) for n in hosts.names}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_service_units_pass_systemd_analyze_verify(deployed: Deployed) -> None:
    """The units the roles install are what systemd would load: known keys only, binaries that exist."""
    hosts = deployed.hosts
    for n in hosts.names:
        unit_dir = hosts.prefix(n) / "etc" / "systemd" / "system"
        wanted = {f"{s}.service" for s in SERVICES} | ({"spdkvirt-controller.service"} if n in CONTROLLERS else set())
        units = sorted(p for p in unit_dir.glob("*.service"))
        assert {p.name for p in units} == wanted, (n, units)
        proc = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, units)],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), (n, proc.stderr)


def test_second_run_changes_nothing(deployed: Deployed) -> None:
    assert deployed.first.ok, deployed.first.describe()
    pids = deployed.hosts.service_pids()
    again = run_playbook(deployed.hosts, deployed.inventory, "site.yml")
    assert again.ok, again.describe()
    assert again.changed() == dict.fromkeys(deployed.hosts.names, 0), again.describe()
    assert deployed.hosts.service_pids() == pids


def _volume(deployed: Deployed, state: str) -> PlaybookRun:
    extra = {"volume_name": "vol1", "volume_size": "32MiB", "volume_redundancy": 2, "volume_state": state}
    return run_playbook(deployed.hosts, deployed.inventory, "playbooks/volume.yml", extra_vars=extra)


def test_volume_module_creates_leaves_and_deletes(deployed: Deployed) -> None:
    assert deployed.first.ok, deployed.first.describe()

    created = _volume(deployed, "present")
    assert created.ok, created.describe()
    assert created.changed() == {CONTROLLERS[0]: 1}, created.describe()
    shown = deployed.api("volume", "show", "vol1")
    assert shown["redundancy"] == 2 and shown["size_bytes"] == 32 << 20
    assert len({leg["node"] for leg in shown["legs"]}) == 2, shown

    again = _volume(deployed, "present")
    assert again.ok, again.describe()
    assert again.changed() == {CONTROLLERS[0]: 0}, again.describe()

    deleted = _volume(deployed, "absent")
    assert deleted.ok, deleted.describe()
    assert deleted.changed() == {CONTROLLERS[0]: 1}, deleted.describe()
    assert [v for v in deployed.api("volume", "list") if v.get("name") == "vol1"] == []


def test_spdk_target_refuses_a_missing_binary(deployed: Deployed) -> None:
    play = deployed.hosts.workdir / "spdk-target-only.yml"
    play.write_text(
        "- name: Only the SPDK target\n"
        "  hosts: n1\n"
        "  gather_facts: true\n"
        "  roles:\n"
        "    - role: spdkvirt.cluster.spdk_target\n"
    )
    missing_binary = str(deployed.hosts.workdir / "no-such-spdk_tgt")
    run = run_playbook(deployed.hosts, deployed.inventory, str(play), extra_vars={"spdk_target_binary": missing_binary})
    assert run.returncode != 0, run.describe()
    failures = run.record.get("failed", [])
    assert [f["task"] for f in failures] == ["spdkvirt.cluster.spdk_target : Fail when the SPDK binary is missing"], (
        run.describe()
    )
    assert missing_binary in failures[0]["msg"] and "does not download or build SPDK" in failures[0]["msg"]
    assert deployed.hosts.service_pids()["n1/spdkvirt-spdk"] > 0
