"""The collection's modules run by Ansible against a running cluster.

A cluster of three simulator-backed nodes runs in a process of its own (:mod:`tests.ansible.modules_cluster`):
its leading controller serves the admin API on a UNIX socket and over HTTP with a token, and a standby
controller (which answers writes with NotLeader) serves another socket. Each module call is a real
``ansible localhost -m spdkvirt.cluster.<module>`` (or a playbook), with the collection found through a
temporary ``ansible_collections/spdkvirt/cluster`` link to ``ansible/`` and this virtualenv's Python as
the modules' interpreter. What the modules report is checked against what the API then shows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spdkvirt.api.client import call_sync
from spdkvirt.api.errors import NotFound
from spdkvirt.cli.sizes import SizeError, parse_size

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEADLINE = 90.0
MIB = 1 << 20
HOST_NQN = "nqn.2014-08.org.nvmexpress:uuid:5b0c3a4e-7d1f-4c2a-9e8b-1a2b3c4d5e6f"
OTHER_NQN = "nqn.2014-08.org.nvmexpress:uuid:0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b"
INITIATOR = "iqn.2005-03.org.open-iscsi:client1"


@dataclass(frozen=True)
class Cluster:
    unix: str
    http: str
    token_file: str
    standby: str
    env: dict[str, str]
    tmp: Path
    https: str | None = None
    ca: str | None = None

    def api(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return call_sync(self.unix, method, params, timeout=30)

    def volume(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.api("volume_get", {"name": name})
        except NotFound:
            return None
        return found

    def ansible(self, module: str, args: dict[str, Any], *, check: bool = False, diff: bool = False) -> dict[str, Any]:
        """``ansible localhost -m spdkvirt.cluster.<module> -a <args>``: the module's result."""
        cmd = [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
               "-e", f"ansible_python_interpreter={sys.executable}",
               "-m", f"spdkvirt.cluster.{module}", "-a", json.dumps(args)]  # fmt: skip
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=DEADLINE, check=False)
        results = [line["result"] for line in records(p.stdout) if "result" in line]
        if len(results) != 1:
            raise AssertionError(f"{cmd}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        result: dict[str, Any] = results[0]
        return result

    def playbook(self, text: str) -> tuple[int, dict[str, Any], str]:
        """Run a playbook: its exit code, localhost's stats and its whole output."""
        path = self.tmp / "play.yml"
        path.write_text(text)
        cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", f"ansible_python_interpreter={sys.executable}", str(path)]  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=DEADLINE, check=False)
        stats = [line["stats"] for line in records(p.stdout) if "stats" in line]
        return p.returncode, (stats[0].get("localhost", {}) if stats else {}), p.stdout + p.stderr


def records(stdout: str) -> list[dict[str, Any]]:
    """The JSON lines the modules_record callback printed."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def collections_dir(tmp: Path) -> Path:
    """``tmp/collections/ansible_collections/spdkvirt/cluster`` -> the repository's ``ansible/``."""
    top = tmp / "collections"
    ns = top / "ansible_collections" / "spdkvirt"
    ns.mkdir(parents=True)
    (ns / "cluster").symlink_to(REPO / "ansible")
    return top


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("modules")
    log = tmp / "cluster.log"
    cmd = [sys.executable, "-m", "tests.ansible.modules_cluster", str(tmp / "work")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=out, stdin=subprocess.DEVNULL, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("ready "):
            raise AssertionError(f"the cluster did not start: {line}\n{log.read_text(errors='replace')}")
        ready = json.loads(line[len("ready ") :])
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            HOME=str(tmp),
            ANSIBLE_COLLECTIONS_PATH=str(collections_dir(tmp)),
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent / "modules_callback"),
            ANSIBLE_STDOUT_CALLBACK="modules_record",
            ANSIBLE_LOCALHOST_WARNING="0",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
            ANSIBLE_DEPRECATION_WARNINGS="0",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"),
            ANSIBLE_REMOTE_TEMP=str(tmp / "ansible-remote"),
        )
        yield Cluster(ready["unix"], ready["http"], ready["token_file"], ready["standby"], env, tmp,
                      ready.get("https"), ready.get("ca"))  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def unix(c: Cluster, **args: Any) -> dict[str, Any]:
    """Args reaching the API through the standby first (NotLeader for writes), then the leader."""
    return {"api_url": [c.standby, f"unix:{c.unix}"], **args}


def http(c: Cluster, **args: Any) -> dict[str, Any]:
    return {"api_url": [c.http], "api_token_file": c.token_file, **args}


def test_volume_create_rerun_check_resize_delete(cluster: Cluster) -> None:
    c = cluster
    # check mode predicts the creation and writes nothing
    r = c.ansible("volume", unix(c, name="mv1", size="64MiB"), check=True, diff=True)
    assert r["changed"] is True, r
    assert r["diff"]["before"] == {}
    assert r["diff"]["after"] == {"name": "mv1", "size_bytes": 64 * MIB, "redundancy": 2, "thin": True}
    assert c.volume("mv1") is None

    r = c.ansible("volume", unix(c, name="mv1", size="64MiB"), diff=True)
    assert r["changed"] is True, r
    assert r["volume"]["name"] == "mv1" and r["volume"]["size_bytes"] == 64 * MIB
    assert r["diff"]["after"]["size_bytes"] == 64 * MIB
    shown = c.volume("mv1")
    assert shown is not None and shown["uuid"] == r["volume"]["uuid"] and shown["redundancy"] == 2

    # the same again: nothing to do; bytes and units mean the same size
    for size in ("64MiB", str(64 * MIB), "64M", "0.0625G"):
        r = c.ansible("volume", unix(c, name="mv1", size=size, redundancy=2, thin=True))
        assert r["changed"] is False, (size, r)
    r = c.ansible("volume", unix(c, name="mv1"))
    assert r["changed"] is False and r["volume"]["uuid"] == shown["uuid"]

    # growing: predicted in check mode, then done
    r = c.ansible("volume", unix(c, name="mv1", size="128MiB"), check=True, diff=True)
    assert r["changed"] is True
    assert r["diff"]["before"]["size_bytes"] == 64 * MIB and r["diff"]["after"]["size_bytes"] == 128 * MIB
    assert c.volume("mv1")["size_bytes"] == 64 * MIB  # type: ignore[index]
    r = c.ansible("volume", unix(c, name="mv1", size="128MiB", wait=True, wait_timeout=60))
    assert r["changed"] is True and r["volume"]["size_bytes"] == 128 * MIB
    assert r["volume"]["state"] == "healthy"
    assert c.volume("mv1")["size_bytes"] == 128 * MIB  # type: ignore[index]
    assert c.ansible("volume", unix(c, name="mv1", size="128MiB"))["changed"] is False

    # never shrink; fixed properties are named
    r = c.ansible("volume", unix(c, name="mv1", size="64MiB"))
    assert r.get("failed") is True and "size" in r["msg"] and "never shrink" in r["msg"], r
    r = c.ansible("volume", unix(c, name="mv1", size="128MiB", redundancy=3, thin=False))
    assert r.get("failed") is True, r
    assert "redundancy (the volume has 2, asked 3)" in r["msg"] and "thin" in r["msg"], r
    assert c.volume("mv1")["size_bytes"] == 128 * MIB  # type: ignore[index]

    # absent: predicted, done, then nothing to do
    r = c.ansible("volume", unix(c, name="mv1", state="absent"), check=True, diff=True)
    assert r["changed"] is True and r["diff"]["after"] == {} and r["diff"]["before"]["name"] == "mv1"
    assert c.volume("mv1") is not None
    r = c.ansible("volume", unix(c, name="mv1", state="absent"))
    assert r["changed"] is True
    assert c.volume("mv1") is None
    r = c.ansible("volume", unix(c, name="mv1", state="absent"))
    assert r["changed"] is False


def test_volume_bad_parameters_name_the_field(cluster: Cluster) -> None:
    c = cluster
    r = c.ansible("volume", unix(c, name="mv2", size="10000000"))
    assert r.get("failed") is True and r["msg"].startswith("size: must be a multiple of 4096"), r
    r = c.ansible("volume", unix(c, name="mv2", size="12 parsecs"))
    assert r.get("failed") is True and r["msg"].startswith("size: bad size"), r
    r = c.ansible("volume", unix(c, name="mv2"))
    assert r.get("failed") is True and "size is required" in r["msg"], r
    # the API's own refusal, naming the field
    r = c.ansible("volume", unix(c, name="Bad/Name", size="64MiB"))
    assert r.get("failed") is True and "(field: name)" in r["msg"], r
    assert r["api_error"]["code"] == -32602
    r = c.ansible("volume", unix(c, name="mv2", size="64MiB", placement={"nodes": ["nope"]}, redundancy=1))
    assert r.get("failed") is True, r
    assert c.volume("mv2") is None
    r = c.ansible("volume", unix(c, name="mv2", size="64MiB", redundancy=5))
    assert r.get("failed") is True and "redundancy" in r["msg"], r


def test_volume_over_http_with_token_and_wait(cluster: Cluster) -> None:
    c = cluster
    r = c.ansible("volume", http(c, name="mv3", size=32 * MIB, redundancy=3, wait=True))
    assert r["changed"] is True and r["volume"]["state"] == "healthy" and r["volume"]["redundancy"] == 3, r
    assert len({leg["node"] for leg in r["volume"]["legs"]}) == 3
    assert c.ansible("volume", http(c, name="mv3", size="32MiB"))["changed"] is False
    # a wrong token is refused and said so; nothing is written
    r = c.ansible("volume", {"api_url": [c.http], "api_token": "x" * 32, "name": "mv3", "state": "absent"})
    assert r.get("failed") is True and "HTTP 401" in r["msg"], r
    assert "x" * 32 not in json.dumps(r)
    # no controller reachable
    r = c.ansible("volume", {"api_url": [str(c.tmp / "nothing.sock")], "name": "mv3", "state": "absent"})
    assert r.get("failed") is True and "nothing.sock" in r["msg"], r
    assert c.volume("mv3") is not None
    # an endpoint that cannot be reached is passed over
    gone = {"api_url": [str(c.tmp / "nothing.sock"), "http://127.0.0.1:9", c.http], "api_token_file": c.token_file}
    assert c.ansible("volume", dict(gone, name="mv3", state="absent"))["changed"] is True
    assert c.volume("mv3") is None


def test_export_create_rerun_change_delete(cluster: Cluster) -> None:
    c = cluster
    assert c.ansible("volume", unix(c, name="mv4", size="64MiB"))["changed"] is True
    nvmf = {"volume": "mv4", "protocol": "nvmf", "hosts": [HOST_NQN]}

    r = c.ansible("export", unix(c, **nvmf), check=True, diff=True)
    assert r["changed"] is True and r["diff"]["after"]["hosts"] == [HOST_NQN], r
    assert c.api("export_list", {"volume": "mv4"}) == []

    r = c.ansible("export", unix(c, **nvmf), diff=True)
    assert r["changed"] is True, r
    export = r["export"]
    assert export["protocol"] == "nvmf" and export["nvmf"]["hosts"] == [HOST_NQN]
    assert export["nvmf"]["subnqn"].endswith("mv4") and export["nvmf"]["listeners"]
    assert [e["export_id"] for e in c.api("export_list", {"volume": "mv4"})] == [export["export_id"]]

    r = c.ansible("export", http(c, **nvmf))
    assert r["changed"] is False and r["export"]["export_id"] == export["export_id"], r

    # other hosts: the export is rewritten in place
    r = c.ansible("export", unix(c, **dict(nvmf, hosts=[OTHER_NQN, HOST_NQN])), diff=True)
    assert r["changed"] is True
    assert r["diff"]["before"]["hosts"] == [HOST_NQN]
    assert r["diff"]["after"]["hosts"] == sorted([OTHER_NQN, HOST_NQN])
    assert r["export"]["export_id"] == export["export_id"]
    assert c.ansible("export", unix(c, **dict(nvmf, hosts=[HOST_NQN, OTHER_NQN])))["changed"] is False

    # options of the other protocol are refused, by name
    r = c.ansible("export", unix(c, **dict(nvmf, initiators=[INITIATOR])))
    assert r.get("failed") is True and r["msg"].startswith("initiators: only with protocol iscsi"), r
    # a volume with an export is not deleted
    r = c.ansible("volume", unix(c, name="mv4", state="absent"))
    assert r.get("failed") is True and "exports" in r["msg"], r

    r = c.ansible("export", unix(c, volume="mv4", protocol="nvmf", state="absent"), check=True)
    assert r["changed"] is True and len(c.api("export_list", {"volume": "mv4"})) == 1
    r = c.ansible("export", unix(c, volume="mv4", protocol="nvmf", state="absent"))
    assert r["changed"] is True and c.api("export_list", {"volume": "mv4"}) == []
    r = c.ansible("export", unix(c, volume="mv4", protocol="nvmf", state="absent"))
    assert r["changed"] is False

    # iSCSI with CHAP: the secret never shows; it is sent again only when asked
    chap = {"user": "client1", "secret": "s3cret-s3cret-1"}
    iscsi = {"volume": "mv4", "protocol": "iscsi", "initiators": [INITIATOR], "chap": chap}
    r = c.ansible("export", unix(c, **iscsi), diff=True)
    assert r["changed"] is True, r
    assert r["export"]["iscsi"]["initiators"] == [INITIATOR] and r["export"]["iscsi"]["chap"] == {"user": "client1"}
    assert "s3cret-s3cret-1" not in json.dumps(r)
    assert c.ansible("export", unix(c, **iscsi))["changed"] is False
    assert c.ansible("export", unix(c, **iscsi, update_secrets="always"))["changed"] is True
    r = c.ansible("export", unix(c, **dict(iscsi, chap=dict(chap, user="client2"))))
    assert r["changed"] is True and r["export"]["iscsi"]["chap"] == {"user": "client2"}

    # no volume to export
    r = c.ansible("export", unix(c, volume="nope", protocol="nvmf", allow_any_host=True))
    assert r.get("failed") is True and "no volume nope" in r["msg"], r
    assert c.ansible("export", unix(c, volume="nope", protocol="nvmf", state="absent"))["changed"] is False

    assert c.ansible("export", unix(c, volume="mv4", protocol="iscsi", state="absent"))["changed"] is True
    assert c.ansible("volume", unix(c, name="mv4", state="absent"))["changed"] is True


def test_cluster_info_reads_everything(cluster: Cluster) -> None:
    c = cluster
    assert c.ansible("volume", unix(c, name="mv5", size="64MiB"))["changed"] is True
    try:
        for check in (False, True):
            r = c.ansible("cluster_info", http(c, epochs=5), check=check)
            assert r["changed"] is False, r
            assert r["cluster_status"]["nodes"]["up"] == 3
            assert sorted(n["node_id"] for n in r["nodes"]) == ["n1", "n2", "n3"]
            assert len(r["devices"]) == 6
            assert "mv5" in [v["name"] for v in r["volumes"]]
            assert isinstance(r["exports"], list) and isinstance(r["epochs"], list)
            assert len(r["epochs"]) <= 5
    finally:
        c.ansible("volume", unix(c, name="mv5", state="absent"))


def test_playbook_with_module_defaults(cluster: Cluster) -> None:
    """A playbook setting the API once for the collection's action group; its second run changes nothing."""
    c = cluster
    play = f"""
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/spdkvirt.cluster.api:
      api_url: ["{c.standby}", "{c.http}"]
      api_token_file: "{c.token_file}"
  tasks:
    - spdkvirt.cluster.volume: {{name: mv6, size: 48MiB, wait: true}}
    - spdkvirt.cluster.export: {{volume: mv6, protocol: nvmf, allow_any_host: true}}
    - spdkvirt.cluster.cluster_info: {{epochs: 1}}
      register: info
    - ansible.builtin.assert:
        that: "'mv6' in (info.volumes | map(attribute='name'))"
"""
    for changed in (2, 0):
        code, stats, out = c.playbook(play)
        assert code == 0, out
        assert stats["changed"] == changed and stats["failures"] == 0, stats
    code, stats, out = c.playbook(
        play.split("  tasks:", maxsplit=1)[0]
        + """  tasks:
    - spdkvirt.cluster.export: {volume: mv6, protocol: nvmf, state: absent}
    - spdkvirt.cluster.volume: {name: mv6, state: absent}
"""
    )
    assert code == 0 and stats["changed"] == 2, out
    assert c.volume("mv6") is None


def test_no_leader_anywhere_fails_clearly(cluster: Cluster) -> None:
    started = time.monotonic()
    r = cluster.ansible("volume", {"api_url": [cluster.standby], "name": "mv7", "size": "64MiB", "api_timeout": 4})
    assert r.get("failed") is True and "does not lead" in r["msg"], r
    assert time.monotonic() - started >= 4  # asked again while no leader came
    assert cluster.volume("mv7") is None


def test_https_with_the_ca_and_certificate_checks(cluster: Cluster) -> None:
    c = cluster
    if c.https is None or c.ca is None:
        pytest.skip("no certificate could be made (neither cryptography nor openssl)")
    base = {"api_url": [c.https], "api_token_file": c.token_file, "epochs": 0}
    r = c.ansible("cluster_info", dict(base, ca_path=c.ca))
    assert r.get("failed") is not True and r["cluster_status"]["nodes"]["up"] == 3, r
    r = c.ansible("cluster_info", base)
    assert r.get("failed") is True and "certificate" in r["msg"].lower(), r
    r = c.ansible("cluster_info", dict(base, validate_certs=False))
    assert r.get("failed") is not True and len(r["nodes"]) == 3, r


def module_sizes() -> ModuleType:
    """The collection's ``module_utils/sizes.py``, loaded from its file (it needs no Ansible)."""
    path = REPO / "ansible" / "plugins" / "module_utils" / "sizes.py"
    spec = importlib.util.spec_from_file_location("collection_sizes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SIZES = module_sizes()
UNIT_TEXTS = ["", "b", "B", "k", "K", "Ki", "KiB", "kb", "KB", "M", "MiB", "mb", "g", "G", "GiB", "Gi", "T", "TiB",
              "p", "PiB", "bi", "x", "Kx", "KiBs", "mm"]  # fmt: skip


@given(
    st.from_regex(r"[0-9]{1,7}(\.[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(UNIT_TEXTS),
    st.sampled_from(["", " ", "\t"]),
    st.sampled_from(["", " ", "\n"]),
)
def test_sizes_read_like_the_command_line(number: str, unit: str, inner: str, outer: str) -> None:
    text = f"{outer}{number}{inner}{unit}{outer}"
    try:
        expected: int | None = parse_size(text)
    except SizeError:
        expected = None
    try:
        got: int | None = SIZES.parse_size(text)
    except SIZES.SizeError:
        got = None
    assert got == expected, text


@pytest.mark.parametrize("text", ["64MiB", "10G", "1.5GiB", "4096", " 2 TiB ", "1.5", "12 parsecs", "", "1e6", "-1M"])
def test_size_examples_read_like_the_command_line(text: str) -> None:
    try:
        expected: int | None = parse_size(text)
    except SizeError:
        expected = None
    try:
        got: int | None = SIZES.parse_size(text)
    except SIZES.SizeError:
        got = None
    assert got == expected
