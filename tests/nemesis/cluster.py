"""The nemesis on a cluster of processes: one network namespace per node (agent and SPDK target
inside), a controller and etcd of 3 members in the root namespace (``tests/cluster``). Besides
what a local cluster allows, it cuts nodes off the network, off etcd only, owners off the node of
a leg, and kills etcd members. The hosts write from the root namespace over the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections import defaultdict

from spdkvirt.model.records import Volume
from spdkvirt.spdk.errors import SpdkError
from spdkvirt.store import Store, keys
from tests.cluster.cluster_ops import Ops
from tests.nemesis.run import SLOW_MS, SLOWED, STEP_WAIT, Result, Run, real_connect, sim_connect
from tests.nemesis.schedule import NAMESPACED, Fault, schedule
from tests.support.steps import at_point

MiB = 1 << 20


class Namespaced:
    def __init__(self, ops: Ops, store: Store) -> None:
        self.ops = ops
        self.c = ops.c
        self.store = store
        self.nodes = list(ops.c.node_names)
        self.controller = ""
        self.started = 0
        self.rng = random.Random(0)
        self.busy: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def endpoint(self, node: str) -> tuple[str, int]:
        return self.c.net.address(node), 4420

    def start_controller(self) -> str:
        self.started += 1
        self.controller = f"ctl{self.started}"
        self.ops.start_controller(self.controller)
        return self.controller

    async def spdk(self, node: str, method: str, params: dict[str, object]) -> None:
        with contextlib.suppress(SpdkError, OSError):
            await self.ops.spdk_call(node, method, params)

    async def fault(self, f: Fault) -> bool:
        # one fault at a time on a node: the one before is undone (a restarted target is ready)
        async with self.busy[f.node] if f.node else contextlib.nullcontext():
            return await self._fault(f)

    async def _fault(self, f: Fault) -> bool:
        c, ops = self.c, self.ops
        if f.kind == "device":
            with contextlib.suppress(SpdkError, OSError):
                await ops.fail_device(f.node, f.device)
            return True
        undo = None
        reached = True
        if f.kind == "spdk":
            c.stop_sim(f.node)
            undo = lambda: asyncio.to_thread(c.restart_sim, f.node)  # noqa: E731
        elif f.kind == "agent":
            c.procs.kill(f"{f.node}-agent", signal.SIGKILL)

            async def undo() -> None:
                ops.start_agents([f.node])
        elif f.kind == "controller":
            reached = not f.step or await at_point(self.store, f.step, STEP_WAIT)
            killed = self.controller
            with contextlib.suppress(ProcessLookupError):
                c.procs.kill(killed, signal.SIGKILL)

            async def undo() -> None:
                if self.controller == killed:  # not started again by an overlapping fault
                    self.start_controller()
        elif f.kind == "slow":
            for m in SLOWED:
                await self.spdk(f.node, "sim_rpc_delay", {"method": m, "ms": SLOW_MS})

            async def undo() -> None:
                for m in SLOWED:
                    await self.spdk(f.node, "sim_rpc_delay", {"method": m, "ms": 0})
        elif f.kind == "partition":
            c.partition(f.node)

            async def undo() -> None:
                c.heal(f.node)
        elif f.kind == "etcd_cut":
            c.net.cut(f.node, c.host_address)

            async def undo() -> None:
                c.net.uncut(f.node, c.host_address)
        elif f.kind == "leg_cut":
            owner, peer = await self.owner_and_leg(f.node)
            c.net.cut(owner, c.net.address(peer))

            async def undo() -> None:
                c.net.uncut(owner, c.net.address(peer))
        elif f.kind == "etcd":
            index = int(f.node.removeprefix("etcd"))
            await asyncio.to_thread(c.kill_etcd, index)
            undo = lambda: asyncio.to_thread(c.restart_etcd, index)  # noqa: E731
        else:
            raise ValueError(f"unknown fault {f.kind}")
        await asyncio.sleep(f.duration)
        await undo()
        return reached

    async def owner_and_leg(self, node: str) -> tuple[str, str]:
        """A volume owned by ``node`` (or any) and another node holding one of its legs."""
        vols = [Volume.of(kv.value) for kv in (await self.store.range(keys.prefix("volume"))).kvs]
        mine = [v for v in vols if v.owner == node] or vols
        v = mine[self.rng.randrange(len(mine))]
        peers = sorted({x.node for x in v.legs} - {v.owner}) or sorted(set(self.nodes) - {v.owner})
        return v.owner, peers[0]


async def run_schedule(ops: Ops, seed: int, *, volumes: int = 4, faults: int = 3, span: float = 6.0,
                       settle: float = 90.0) -> Result:  # fmt: skip
    """On a started cluster with no processes yet: agents, a controller, ``volumes`` exported
    mirrored volumes; then seed's schedule under load, judged."""
    ops.start_agents()
    nodes = Namespaced(ops, await ops.store())
    await ops.wait_leader(nodes.start_controller())
    await ops.wait_registered(nodes.nodes)
    names = [f"v{i}" for i in range(volumes)]
    for n in names:
        await ops.admin("volume_create", {"name": n, "size_bytes": 8 * MiB, "redundancy": 2})
        await ops.admin("export_create", {"volume": n, "protocol": "nvmf", "allow_any_host": True})
    real = ops.c.real_spdk is not None
    run = Run(nodes, names, real_connect if real else sim_connect)
    await run.settled(60.0)
    devices = [f"{n}/{d}" for n in nodes.nodes for d in ops.device_ids(n)]
    # its agents have no out-of-band fence: a killed agent leaves its SPDK serving (README,
    # fencing); tests/nemesis kills agents where the controller fences through the socket
    kinds = tuple(k for k in NAMESPACED if k != "agent" and not (real and k == "slow"))
    plan = schedule(seed, nodes.nodes, devices, faults=faults, span=span, kinds=kinds)
    return await run.through(seed, plan, settle)
