"""A master that dies in the middle of an epoch: the other controller takes the epoch over and ends it.

One cluster (three nodes in namespaces, agents, etcd) serves every crash point in turn. Each round
starts a controller, waits until it leads, starts a second controller, fails the device with the
most legs and, watching the store, freezes the first controller (SIGSTOP) the moment the epoch
reaches the round's point, waits there if the point says so (for the nodes' answers), and kills it
(SIGKILL). It then checks: the first controller died, the second took the open epoch over in the expected phase
and finished it (and any later one) under its own token, every volume is back at full redundancy
with nothing held, and the volumes' data reads back through their exports. The round then brings
the device back (its agent empties it) and stops the second controller, so the next round starts
from a healthy cluster with no controller running.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from spdkvirt.store import keys
from tests.cluster.cluster_ops import Ops, until
from tests.cluster.harness import Cluster, ClusterEnv, MiB
from tests.support.steps import reach, until_answered

pytestmark = [pytest.mark.etcd, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

NODES = ("n1", "n2", "n3")
VOLUMES = 12
SETTLE = 90.0

#: crash point -> the phase the epoch is in when the next leader finds it. ``<phase>:before_acks``:
#: killed as the epoch record enters the phase; ``<phase>:after_acks``: frozen then, killed once every
#: node has answered. (A leader that dies with the new mappings written, or half of them, the epoch
#: record still quiescing: tests/integration/test_takeover.py builds that state in the store.)
CRASH_POINTS = {
    "quiescing:before_acks": "quiescing",
    "quiescing:after_acks": "quiescing",
    "remapping:after_acks": "remapping",
    "resuming:before_acks": "resuming",
}


@pytest.fixture(scope="module")
def crash_cluster(cluster_env: ClusterEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("crash"), nodes=NODES, devices=2, device_size=384 * MiB, poll_ms=4)
    c.start()
    try:
        yield c
    finally:
        c.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(crash_cluster: Cluster) -> AsyncIterator[Ops]:
    """Agents and healthy, exported volumes holding data; no controller left running."""
    o = Ops(crash_cluster)
    try:
        o.start_agents()
        o.start_controller("setup")
        await o.wait_leader("setup")

        await o.wait_registered(NODES)
        await o.create_volumes(VOLUMES)
        await o.export_all()
        await o.write_patterns()
        await o.settled(lambda: o.redundancy_problems(NODES), within=SETTLE, what="new volumes healthy")
        o.stop_controller("setup")
        yield o
    finally:
        await o.close_store()
        o.close()


@pytest_asyncio.fixture(loop_scope="module")
async def ops(shared: Ops) -> AsyncIterator[Ops]:
    """The shared cluster at the start of a round: healthy, no controller running."""
    for name in shared.controllers:
        if shared.controller_alive(name):
            shared.stop_controller(name)
    yield shared


def log_of(ops: Ops, name: str) -> str:
    return Path(ops.c.procs.log_path(name)).read_text(errors="replace")


async def candidates(ops: Ops) -> int:
    return len((await (await ops.store()).range(keys.candidates("master"))).kvs)


@pytest.mark.parametrize("point", list(CRASH_POINTS))
async def test_second_controller_finishes_the_epoch(ops: Ops, point: str) -> None:
    slug = point.replace(":", "-").replace("_", "-")
    first = ops.start_controller(f"first-{slug}")
    await ops.wait_leader(first.name)
    # a change the leader checks but does not make: answered once its view of the cluster is synced
    start = await ops.state()
    some = min(start.volumes.values(), key=lambda v: v.name)
    await ops.admin("volume_resize", {"name": some.name, "size_bytes": some.size_bytes})
    second = ops.start_controller(f"second-{slug}")
    await until(lambda: candidates_are(ops, 2), within=30, what="the second controller campaigns")

    counts = {key: sum(1 for v in start.volumes.values() for leg in v.legs if (leg.node, leg.device) == key)
              for key in start.devices}  # fmt: skip
    node, device = max(counts, key=lambda key: (counts[key], key))
    hit = set(start.legs_on(node, device))
    watching = asyncio.Event()
    killer = asyncio.get_running_loop().create_task(kill_at(ops, first.name, point, start.last_epoch, watching))
    await asyncio.wait_for(watching.wait(), 10)
    started = time.monotonic()
    await ops.fail_device(node, device)

    await asyncio.wait_for(killer, 30)
    await until(lambda: dead(ops, first.name), within=30, what=f"{first.name} dies at {point}")
    assert ops.c.procs.returncode(first.name) == -signal.SIGKILL
    if CRASH_POINTS[point] != "resuming":
        await held_while_nobody_leads(ops, first.name)
    leader = await ops.wait_leader(second.name)

    async def problems() -> list[str]:
        st = await ops.state()
        out = [] if st.devices[(node, device)].state == "failed" else [f"{node}/{device} not marked failed"]
        out += [f"{v}: still on {node}/{device}" for v in st.legs_on(node, device)]
        for e in st.epochs:
            if e["number"] > start.last_epoch and (e["phase"] != "done" or e["leader_token"] != leader.token):
                out.append(f"epoch {e['number']}: {e['phase']} under token {e['leader_token']}")
        return out + await ops.redundancy_problems(NODES)

    await ops.settled(problems, within=SETTLE, what=f"epoch taken over after a crash at {point}")
    print(
        f"timing: crash at {point}: device failure -> healthy under {second.name}: {time.monotonic() - started:.2f} s"
    )

    after = await ops.state()
    epochs = [e for e in after.epochs if e["number"] > start.last_epoch]
    assert epochs, "no epoch was opened"
    first_epoch = min(e["number"] for e in epochs)
    taken = f"epoch {first_epoch}: taking over in phase {CRASH_POINTS[point]}"
    assert taken in log_of(ops, second.name), f"{second.name} did not log {taken!r}"
    assert f"epoch {first_epoch} done" not in log_of(ops, first.name)
    affected = after.affected_since(start.last_epoch)
    assert affected <= hit, f"volumes without a leg on {node}/{device} were quiesced: {sorted(affected - hit)}"
    assert all(not st.get("held") for st in after.statuses.values())
    assert not await ops.pattern_problems()

    # back to a healthy cluster with the device returned to the pool
    await ops.restore_device(node, device)

    async def restored() -> list[str]:
        st = await ops.state()
        out = [] if st.devices[(node, device)].state == "available" else [f"{node}/{device} not available"]
        return out + await ops.redundancy_problems(NODES)

    await ops.settled(restored, within=SETTLE, what=f"{node}/{device} back")
    ops.stop_controller(second.name)


async def kill_at(ops: Ops, name: str, point: str, since: int, watching: asyncio.Event) -> None:
    """Freeze controller ``name`` (SIGSTOP) the moment the first epoch after ``since`` reaches
    ``point`` (as the store shows it), wait there if the point says so, then SIGKILL it."""
    phase, _, when = point.partition(":")
    store = await ops.store()
    epoch = await reach(store, phase, since, watching)
    ops.c.procs.kill(name, signal.SIGSTOP)
    if when == "after_acks":
        assert await until_answered(store, epoch, phase, 20), f"every node answers {phase} of epoch {epoch['number']}"
    ops.c.procs.kill(name, signal.SIGKILL)


async def held_while_nobody_leads(ops: Ops, dead_leader: str) -> None:
    """Between the crash and the takeover (the dead leader's lease runs for seconds) the volumes of
    the open epoch stay quiesced: their owners report them held and host reads wait."""
    [epoch] = (await ops.state()).open_epochs()
    volumes = sorted(epoch["affected_volumes"])

    async def not_held() -> list[str]:
        st = await ops.state()
        return [f"{name}: not held" for name in volumes if not st.statuses.get(name, {}).get("held")]

    await ops.settled(not_held, within=1.0, what=f"the volumes of epoch {epoch['number']} held after the leader died")
    assert await ops.read_waits(volumes[0], wait=0.3), f"a read of {volumes[0]} was answered while it is held"
    leader = await ops.leader()
    assert leader is not None and leader.holder == dead_leader, "checked too late: the takeover had begun"


async def candidates_are(ops: Ops, count: int) -> bool:
    return await candidates(ops) == count


async def dead(ops: Ops, name: str) -> bool:
    return not ops.controller_alive(name)
