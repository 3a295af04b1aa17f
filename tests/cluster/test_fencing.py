"""Out-of-band fencing over SSH: a node whose agent dies while its SPDK keeps serving is fenced
before its volumes are served elsewhere, and a node that cannot be fenced keeps its volumes.

Three nodes in network namespaces, each with a real sshd on its own address (its forced socket is
the node's SPDK socket); every agent registers ``--fence-url ssh://root@<node>/<spdk socket>``; the
controller, in the root namespace, logs in with the sshds' keys and checks their host keys against
their known_hosts files. Only the agent is killed: the node's SPDK target goes on running and
would go on serving its volume exports if nobody fenced it. Node n3's agent talks to its own SPDK
over SSH as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from spdkvirt.model import names
from tests.cluster.cluster_ops import Ops, State, until
from tests.cluster.harness import Cluster, MiB
from tests.support.needs import require
from tests.support.sshd import Sshd, ssh_unavailable_reason

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

Factory = Callable[..., Cluster]
NODES = ("n1", "n2", "n3")
VOLUMES = 6
SETTLE = 90.0


@contextlib.asynccontextmanager
async def fenceable(
    cluster: Factory, tmp_path: Path, method: str = "listeners", unconfigured: tuple[str, ...] = ()
) -> AsyncIterator[tuple[Ops, dict[str, Sshd]]]:
    """The cluster; nodes in ``unconfigured`` get no --fence-url, and then the controller requires fencing."""
    require([ssh_unavailable_reason()], "the fencing tests")
    c = cluster(nodes=NODES, devices=2, device_size=256 * MiB, poll_ms=4)
    o = Ops(c)
    sshds: dict[str, Sshd] = {}
    try:
        for node in NODES:
            n = c.node(node)
            sshds[node] = Sshd.start(tmp_path / f"sshd-{node}", address=n.address, port=22, netns=n.namespace,
                                     forced_socket=n.spdk_socket)  # fmt: skip
            if node not in unconfigured:
                o.agent_extra[node] = ["--fence-url", sshds[node].url(n.spdk_socket), "--fence-method", method]
            o.controller_extra += ["--ssh-identity", str(sshds[node].key_path)]
            o.controller_extra += ["--ssh-known-hosts", str(sshds[node].known_hosts)]
        o.controller_extra += ["--fence-timeout", "5", *(["--require-fencing"] if unconfigured else [])]
        # n3's agent itself reaches its SPDK over SSH (its own sshd): ssh:// works wherever a socket does
        s3 = sshds["n3"]
        o.agent_spdk["n3"] = s3.url(c.node("n3").spdk_socket)
        o.agent_extra.setdefault("n3", [])
        o.agent_extra["n3"] += ["--ssh-identity", str(s3.key_path), "--ssh-known-hosts", str(s3.known_hosts)]
        o.start_agents()
        o.start_controller("ctl1")
        await o.wait_leader("ctl1")
        await o.wait_registered(NODES)
        await o.create_volumes(VOLUMES, sizes=(16, 24))
        await o.settled(lambda: o.redundancy_problems(NODES), within=SETTLE, what="new volumes healthy")
        await o.export_all()
        await o.write_patterns()
        yield o, sshds
    finally:
        for s in sshds.values():
            s.stop()
        await o.close_store()
        o.close()


def busiest_owner(st: State) -> tuple[str, list[str]]:
    owned: dict[str, list[str]] = {}
    for v in st.volumes.values():
        owned.setdefault(v.owner, []).append(v.name)
    node = max(sorted(owned), key=lambda n: len(owned[n]))
    return node, sorted(owned[node])


async def volume_listeners(o: Ops, node: str) -> dict[str, int]:
    subsystems = await o.spdk_call(node, "nvmf_get_subsystems")
    return {s["nqn"]: len(s["listen_addresses"]) for s in subsystems if s["nqn"].startswith(names.VOLUME_NQN_PREFIX)}


def kill_agent(o: Ops, node: str) -> None:
    o.c.procs.child(f"{node}-agent").signal_group(signal.SIGKILL)


def fencing_of(st: State, node: str, since: int) -> list[dict[str, Any]]:
    out = []
    for e in sorted(st.epochs, key=lambda e: e["number"]):
        if e["number"] > since and node in e.get("fencing", {}):
            out.append(dict(e["fencing"][node], epoch=e["number"], remapped_at=e.get("remapped_at")))
    return out


async def ana_states(o: Ops, node: str, volumes: list[str]) -> set[str]:
    calls = [o.spdk_call(node, "nvmf_subsystem_get_listeners", {"nqn": names.volume_nqn(v)}) for v in volumes]
    return {a["ana_state"] for got in await asyncio.gather(*calls) for listener in got for a in listener["ana_states"]}


@pytest.mark.parametrize("method", ["listeners", "ana", "stop"])
async def test_agent_gone_node_is_fenced_over_ssh_before_its_volumes_move(
    cluster: Factory, tmp_path: Path, method: str
) -> None:
    async with fenceable(cluster, tmp_path, method) as (o, _sshds):
        before = await o.state()
        assert before.nodes["n3"]["spdk"].startswith("ssh://"), before.nodes["n3"]
        victim, owned = busiest_owner(before)
        served = await volume_listeners(o, victim)
        assert all(served.get(names.volume_nqn(v)) for v in owned), f"{victim} does not serve {owned}: {served}"

        kill_agent(o, victim)  # its SPDK target goes on running, exports and all

        async def moved() -> State | None:
            st = await o.state()
            if st.open_epochs() or any(st.volumes[v].owner == victim for v in owned):
                return None
            return st

        after = await until(moved, within=SETTLE, what=f"volumes of {victim} owned elsewhere")
        [fence] = fencing_of(after, victim, before.last_epoch)
        assert fence["ok"] and fence["method"] == method, fence
        assert fence["at"] <= fence["remapped_at"], f"mappings written before the fencing: {fence}"
        status = after.nodes[victim]["fence_status"]
        assert status["ok"] and status["epoch"] == fence["epoch"]
        print(f"timing: fencing {victim} ({method}) over SSH took {fence['ms']} ms: {fence['detail']}")

        if method == "stop":
            assert not o.c.sim_alive(victim), f"{victim}'s SPDK still runs"
        else:  # SPDK there still runs, but serves none of them
            assert o.c.sim_alive(victim)
            left = await volume_listeners(o, victim)
            if method == "listeners":
                assert not any(left.values()), f"{victim} still has volume listeners: {left}"
            else:
                assert await ana_states(o, victim, owned) == {"inaccessible"}
        await o.settled(lambda: o.pattern_problems(owned), within=SETTLE, what="data read from the new owners")


async def test_a_node_that_cannot_be_fenced_keeps_its_volumes(cluster: Factory, tmp_path: Path) -> None:
    async with fenceable(cluster, tmp_path) as (o, sshds):
        before = await o.state()
        victim, owned = busiest_owner(before)
        n = o.c.node(victim)
        sshds[victim].stop()  # SSH to the node fails from now on
        kill_agent(o, victim)

        async def refused() -> list[dict[str, Any]] | None:
            tries = fencing_of(await o.state(), victim, before.last_epoch)
            return tries if tries and not tries[-1]["ok"] else None

        failed = await until(refused, within=SETTLE, what=f"a failed fencing of {victim} recorded")
        assert failed[-1]["method"] == "listeners"
        held_since = time.monotonic()
        while time.monotonic() - held_since < 3.0:  # its volumes stay put: never served twice
            st = await o.state()
            assert all(st.volumes[v].owner == victim for v in owned), "volumes moved off an unfenced node"
            assert not st.nodes[victim]["fence_status"]["ok"]
            await asyncio.sleep(0.2)
        still = await volume_listeners(o, victim)  # and its SPDK still serves them: nobody else does
        assert all(still.get(names.volume_nqn(v)) for v in owned), still

        sshds[victim] = Sshd.start(tmp_path / f"sshd-{victim}", address=n.address, port=22, netns=n.namespace,
                                   forced_socket=n.spdk_socket)  # fmt: skip

        async def fenced_and_moved() -> list[dict[str, Any]] | None:
            st = await o.state()
            tries = fencing_of(st, victim, before.last_epoch)
            if st.open_epochs() or any(st.volumes[v].owner == victim for v in owned):
                return None
            return tries

        tries = await until(fenced_and_moved, within=SETTLE, what=f"{victim} fenced once SSH works again")
        assert tries[-1]["ok"], tries
        assert all(not t["ok"] for t in tries[:-1])
        left = await volume_listeners(o, victim)
        assert not any(left.values()), left
        await o.settled(lambda: o.pattern_problems(owned), within=SETTLE, what="data read from the new owners")


async def test_required_fencing_holds_the_volumes_of_a_node_without_a_fence(cluster: Factory, tmp_path: Path) -> None:
    async with fenceable(cluster, tmp_path, unconfigured=("n1", "n2", "n3")) as (o, _sshds):
        before = await o.state()
        victim, owned = busiest_owner(before)
        kill_agent(o, victim)

        async def refused() -> list[dict[str, Any]] | None:
            tries = fencing_of(await o.state(), victim, before.last_epoch)
            return tries if tries else None

        [first, *_] = await until(refused, within=SETTLE, what=f"a fencing of {victim} recorded")
        assert not first["ok"] and first["method"] == "none", first
        await asyncio.sleep(3.0)
        st = await o.state()
        assert all(st.volumes[v].owner == victim for v in owned), "volumes moved off a node that was not fenced"
        assert not st.nodes[victim]["fence_status"]["ok"]
