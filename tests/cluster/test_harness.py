"""The cluster harness itself: namespaces reach each other and etcd, NVMe/TCP between nodes, partitions,
SIGKILL of a node, and nothing left behind after a teardown, a SIGTERM/SIGINT or a killed test run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from spdkvirt.spdk.methods import ListenAddress, Namespace, Spdk
from spdkvirt.store import keys, open_store
from tests.cluster.harness import Cluster, ClusterEnv
from tests.cluster.netns import Network, link_exists, namespace_pids, namespaces
from tests.cluster.procs import wait_for

pytestmark = pytest.mark.etcd

Factory = Callable[..., Cluster]

NQN = "nqn.2016-06.io.spdk:harness"
NGUID = "5A1B2C3D4E5F40718293A4B5C6D7E8F9"
PORT = "4420"
REPO = Path(__file__).resolve().parents[2]

PUT_NODE = """
import asyncio, sys
from spdkvirt.store import keys, open_store
async def main(url, node, address):
    async with await open_store(url) as store:
        record = {"kind": "node", "schema_version": 1, "node_id": node, "address": address,
                  "state": "up", "generation": 0}
        await store.put(keys.node(node), record)
asyncio.run(main(*sys.argv[1:]))
"""

GET_NODE = """
import asyncio, sys
from spdkvirt.store import keys, open_store
async def main(url, node):
    async with await open_store(url) as store:
        kv = await store.get(keys.node(node))
        print(kv.value["address"] if kv else "-")
asyncio.run(main(*sys.argv[1:]))
"""

LISTEN = """
import socket, sys, time
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
time.sleep(300)
"""

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError:
    sys.exit(1)
"""


def connects(host: str, port: int | str, timeout: float = 0.5) -> bool:
    """A TCP connection from the test process (the root namespace) succeeds."""
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return False
    return True


def connects_from(c: Cluster, node: str, host: str, port: int | str, timeout: float = 0.5) -> bool:
    """A TCP connection from inside the node's namespace succeeds."""
    return c.run_in(node, [sys.executable, "-c", CONNECT, host, str(port), str(timeout)]).returncode == 0


def etcd_port(c: Cluster) -> int:
    assert c.etcd is not None
    return c.etcd.members[0].client_port


async def export_malloc(spdk: Spdk, address: str) -> None:
    """A malloc behind an NVMe/TCP subsystem listening on ``address``:PORT."""
    await asyncio.gather(spdk.bdev_malloc_create(32768, 512, name="L"), spdk.nvmf_create_transport("TCP"))
    await spdk.nvmf_create_subsystem(NQN, allow_any_host=True)
    await asyncio.gather(
        spdk.nvmf_subsystem_add_ns(NQN, Namespace("L", nguid=NGUID)),
        spdk.nvmf_subsystem_add_listener(NQN, ListenAddress("TCP", address, PORT, "IPv4")),
    )


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


# (a) reachability


def test_targets_run_inside_their_namespaces(cluster: Factory) -> None:
    c = cluster(nodes=("n1", "n2"), poll_ms=4)
    assert c.real_spdk is not None or c.target_argv("n1")[-2:] == ["--rpc-poll-ms", "4"]
    for name, n in c.nodes.items():
        pid = c.procs.pid(n.spdk_process)
        argv, line = c.target_argv(name), c.procs.command_line(n.spdk_process)
        if c.real_spdk is None:
            assert line == argv  # ip exec'd it: the pid is its own
        else:  # the command may be a wrapper that execs spdk_tgt: its arguments are the same
            args = argv[len(c.real_spdk) :]
            assert line[-len(args) :] == args and "spdk_tgt" in line[0], line
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{n.namespace}").st_ino
        assert os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        shown = c.run_in(name, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert f"inet {n.address}/24" in shown
        assert [d.path.stat().st_size for d in n.devices] == [256 << 20, 256 << 20]
        assert [d.id for d in n.devices] == ["d0", "d1"]
    assert c.store_url.startswith(f"etcd://{c.host_address}:")


async def test_nodes_reach_each_other_and_etcd(cluster: Factory) -> None:
    c = cluster(nodes=("n1", "n2"))
    n1, n2 = c.node("n1"), c.node("n2")
    put = c.run_in("n1", [sys.executable, "-c", PUT_NODE, c.store_url, "n1", n1.address])
    assert put.returncode == 0, put.stderr
    got = c.run_in("n2", [sys.executable, "-c", GET_NODE, c.store_url, "n1"])
    assert got.stdout.strip() == n1.address, got.stderr
    async with await open_store(c.store_url) as store:
        kv = await store.get(keys.node("n1"))
        assert kv is not None and kv.value["address"] == n1.address
    # a listener inside n2, on n2's address, answers n1
    c.start_in("n2", "listener", [sys.executable, "-c", LISTEN, n2.address, "7000"])
    wait_for(lambda: connects(n2.address, 7000), within=10, what="listener in n2")
    assert connects_from(c, "n1", n2.address, 7000)


# (b) NVMe/TCP between namespaces


async def test_nvme_tcp_between_namespaces(cluster: Factory) -> None:
    c = cluster(nodes=("n1", "n2"))
    n1, n2 = c.node("n1"), c.node("n2")
    async with c.spdk("n1") as exporter, c.spdk("n2") as importer:
        await export_malloc(exporter, n1.address)
        names = await importer.bdev_nvme_attach_controller(
            "nvme0", "TCP", n1.address, adrfam="IPv4", trsvcid=PORT, subnqn=NQN
        )
        assert names == ["nvme0n1"]
        [bdev] = await importer.bdev_get_bdevs("nvme0n1")
        assert bdev["num_blocks"] == 32768 and bdev["block_size"] == 512
        assert bdev["uuid"].replace("-", "").upper() == NGUID
        qpairs = await exporter.nvmf_subsystem_get_qpairs(NQN)
        assert qpairs and {q["peer_address"]["traddr"] for q in qpairs} == {n2.address}


# (c) partition and heal


async def test_partition_cuts_a_node_off_and_heal_restores_it(cluster: Factory) -> None:
    c = cluster(nodes=("n1", "n2"))
    n1 = c.node("n1")
    async with c.spdk("n1") as exporter:
        await export_malloc(exporter, n1.address)
    assert connects(n1.address, PORT)
    assert connects_from(c, "n2", n1.address, PORT)
    assert connects_from(c, "n1", c.host_address, etcd_port(c))

    c.partition("n1")
    assert c.net.partitioned("n1")
    assert not connects(n1.address, PORT)
    assert not connects_from(c, "n2", n1.address, PORT)
    assert not connects_from(c, "n1", c.host_address, etcd_port(c))
    assert connects_from(c, "n2", c.host_address, etcd_port(c))  # only n1 is cut off
    assert c.sim_alive("n1")  # its processes run on; the RPC socket is a file, still reachable
    async with c.spdk("n1") as exporter:
        assert await exporter.nvmf_get_subsystems(NQN)

    c.heal("n1")
    wait_for(lambda: connects(n1.address, PORT), within=10, what="n1 reachable again")
    assert connects_from(c, "n2", n1.address, PORT)
    assert connects_from(c, "n1", c.host_address, etcd_port(c))


# (d) kill_node


async def test_kill_node_sigkills_everything_in_the_node(cluster: Factory) -> None:
    c = cluster(nodes=("n1", "n2"))
    n1 = c.node("n1")
    # a worker, and a grandchild that left its process group: both must die with the node
    c.start_in("n1", "worker", ["sh", "-c", "setsid sleep 300 & exec sleep 301"])
    wait_for(lambda: len(namespace_pids(n1.namespace)) == 3, within=10, what="worker and grandchild")

    killed = c.kill_node("n1")
    assert sorted(killed) == ["n1-spdk", "worker"]
    assert c.procs.returncode("n1-spdk") == -signal.SIGKILL
    assert c.procs.returncode("worker") == -signal.SIGKILL
    wait_for(lambda: namespace_pids(n1.namespace) == [], within=10, what="n1's namespace empty")
    assert c.sim_alive("n2")
    async with c.spdk("n2") as other:
        await other.spdk_get_version()

    c.restart_sim("n1")
    async with c.spdk("n1") as again:
        assert await again.bdev_get_bdevs() == []


def test_agent_argv(cluster: Factory) -> None:
    c = cluster(nodes=("n1",), devices=1, device_size=1 << 20)
    n1 = c.node("n1")
    assert c.agent_argv("n1", "--verbose") == [
        sys.executable, "-m", "spdkvirt.cli.main", "agent", "--node-id", "n1",
        "--spdk-socket", n1.spdk_socket, "--store", c.store_url, "--address", n1.address,
        "--device", f"d0={n1.dir / 'd0.img'}", "--verbose",
    ]  # fmt: skip


# (e) nothing left behind


def leftovers(c: Cluster, pids: list[int]) -> list[str]:
    net = c.net
    left = net.remaining()
    left += [f"pid {p}" for p in pids if not gone(p)]
    return left


def test_teardown_leaves_nothing(cluster: Factory) -> None:
    c = cluster(nodes=("n1", "n2", "n3"), etcd_members=3)
    assert c.etcd is not None
    c.start_in("n2", "worker", ["sh", "-c", "setsid sleep 300 & exec sleep 301"])
    wait_for(lambda: len(namespace_pids(c.node("n2").namespace)) == 3, within=10, what="worker and grandchild")
    pids = c.procs.pids() + [m.proc.pid for m in c.etcd.members if m.proc] + namespace_pids(c.node("n2").namespace)
    assert len(c.net.remaining()) == 1 + 2 * 3  # bridge, and per node a veth and a namespace
    c.kill_etcd(1)
    c.restart_etcd(1)
    restarted = c.etcd.members[1].proc
    assert restarted is not None
    pids.append(restarted.pid)
    c.close()
    wait_for(lambda: not leftovers(c, pids), within=10, what="every namespace, link and process gone")
    assert not (Path("/run/spdkvirt-cluster") / f"{c.net.tag}.json").exists()
    assert not c.etcd.base.exists()
    c.close()  # twice is fine


CHILD = """
import json, sys, time
from tests.cluster.harness import Cluster
c = Cluster(sys.argv[1], nodes=("n1",), devices=0).start()
c.start_in("n1", "worker", ["sleep", "300"])
pids = c.procs.pids() + [m.proc.pid for m in c.etcd.members]
info = {"tag": c.net.tag, "ns": c.node("n1").namespace, "bridge": c.net.bridge, "pids": pids, "etcd": str(c.etcd.base)}
print(json.dumps(info), flush=True)
time.sleep(300)
"""


def run_child(workdir: Path) -> tuple[subprocess.Popen[str], dict[str, object]]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(workdir)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert child.stdout is not None
    with child.stdout:
        line = child.stdout.readline()
    assert line, f"the child exited with {child.wait()}"
    return child, json.loads(line)


def nothing_left(info: dict[str, object]) -> bool:
    pids = info["pids"]
    assert isinstance(pids, list)
    return (
        info["ns"] not in namespaces()
        and not link_exists(str(info["bridge"]))
        and all(gone(p) for p in pids)
        and not (Path("/run/spdkvirt-cluster") / f"{info['tag']}.json").exists()
        and not Path(str(info["etcd"])).exists()
    )


def test_a_signalled_test_run_cleans_up(cluster_env: ClusterEnv, tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        child, info = run_child(tmp_path / sig.name)
        assert info["ns"] in namespaces()
        os.kill(child.pid, sig)
        assert child.wait(timeout=30) == -sig  # the handler chained to the default action
        wait_for(partial(nothing_left, info), within=10, what=f"clean-up after {sig.name}")


def test_reap_stale_removes_what_a_killed_run_left(cluster_env: ClusterEnv, tmp_path: Path) -> None:
    child, info = run_child(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert info["ns"] in namespaces() and link_exists(str(info["bridge"]))
    removed = Network.reap_stale()  # (another test run starting now may have reaped it first)
    assert info["ns"] in removed or info["ns"] not in namespaces()
    # its simulator and worker died with it (PR_SET_PDEATHSIG); its etcd was adopted by the network
    wait_for(lambda: nothing_left(info), within=10, what="stale network reaped")
