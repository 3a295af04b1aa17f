"""What the failover and master-crash tests do to a running cluster, and what they check.

``Ops(cluster)`` starts node agents (with device ids unique across the cluster: ``n1d0``...) and
controllers (in the root namespace, each serving the admin API on its own UNIX socket), makes calls
to whichever controller leads, reads the database directly, injects device failures on a node's
SPDK target and reads back what each target holds. The checks return lists of problems (empty
when all is well), so a test that waits on one can say what was still wrong when time ran out.

The test process talks to etcd over gRPC while it starts processes (fork, then exec). gRPC's fork
handlers restart its poller in the forked child, where closing the inherited descriptors before exec
breaks it: now and then a child hangs before it runs its command. They are turned off here, before
gRPC loads (it reads the setting once, when imported).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from spdkvirt.api.client import ApiClient, ApiUnreachable
from spdkvirt.api.errors import NotLeader
from spdkvirt.model import names
from spdkvirt.model.observed import QUERIES, Observed, observe
from spdkvirt.model.plan import LEG_ID
from spdkvirt.model.records import Device, Volume
from spdkvirt.model.status import leg_bdevs
from spdkvirt.spdk.sim import nvme_host
from spdkvirt.spdk.sim.nvme_wire import OK, ConnectRejected, WireError
from spdkvirt.store import LeaderInfo, Store, keys, open_store
from tests.cluster.harness import Cluster, MiB
from tests.cluster.procs import on_exit
from tests.support import nvmetcp

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")  # none of the imports above loads gRPC

T = TypeVar("T")

ELECTION = "master"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:5b0c7a1e-3d2f-4e6a-9b8c-7d6e5f4a3b21"
BLOCK = 4096
IO_TIMEOUT = 10.0


class NotYet(AssertionError):
    """A condition waited for did not come true in time; the message says what was still wrong."""


async def until(check: Callable[[], Awaitable[T | None]], *, within: float, what: str, interval: float = 0.1) -> T:
    """Await ``check()`` until it returns something truthy (returned); NotYet after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise NotYet(f"not within {within} s: {what}")
        await asyncio.sleep(interval)


async def settled(
    problems: Callable[[], Awaitable[list[str]]],
    *,
    within: float,
    what: str,
    explain: Callable[[], Awaitable[list[str]]] | None = None,
) -> float:
    """Wait until ``problems()`` is empty; returns the seconds it took. NotYet lists what was left
    (and what ``explain()`` then says)."""
    started = time.monotonic()
    left: list[str] = []
    while True:
        left = await problems()
        if not left:
            return time.monotonic() - started
        if time.monotonic() - started >= within:
            shown = "\n  ".join(left[:20])
            more = "\n  ".join(await explain()) if explain is not None else ""
            raise NotYet(f"not within {within} s: {what}; {len(left)} problem(s):\n  {shown}" + (
                f"\nnow:\n  {more}" if more else ""))  # fmt: skip
        await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Controller:
    """A controller process: its name (also its election holder name) and API socket."""

    name: str
    socket: str


@dataclass(frozen=True)
class State:
    """One read of the database: volumes, their owners' status records, devices and epochs."""

    volumes: Mapping[str, Volume]
    statuses: Mapping[str, Mapping[str, Any]]
    devices: Mapping[tuple[str, str], Device]
    epochs: Sequence[Mapping[str, Any]]
    nodes: Mapping[str, Mapping[str, Any]]
    exports: Sequence[Mapping[str, Any]] = ()

    def legs_on(self, node: str, device: str | None = None) -> dict[str, set[str]]:
        """Volume -> its leg ids on that node (and device)."""
        out: dict[str, set[str]] = {}
        for v in self.volumes.values():
            for leg in v.legs:
                if leg.node == node and (device is None or leg.device == device):
                    out.setdefault(v.name, set()).add(leg.leg_id)
        return out

    def affected_since(self, number: int) -> set[str]:
        """Volumes named by any epoch after ``number``."""
        out: set[str] = set()
        for e in self.epochs:
            if e["number"] > number:
                out |= set(e["affected_volumes"])
        return out

    @property
    def last_epoch(self) -> int:
        return max((e["number"] for e in self.epochs), default=0)

    def open_epochs(self) -> list[Mapping[str, Any]]:
        return [e for e in self.epochs if e["phase"] not in ("done", "aborted")]


def volume_problems(v: Volume, st: Mapping[str, Any] | None, usable: Callable[[str, str], bool]) -> list[str]:
    """Why a volume is not back at full redundancy (empty: online, every leg in sync on a usable
    device of its own node, and its owner reports the raid online with all of them, nothing held)."""
    out: list[str] = []
    if v.state != "online":
        out.append(f"{v.name}: state {v.state}")
    if len(v.legs) != v.redundancy:
        out.append(f"{v.name}: {len(v.legs)} leg(s) for redundancy {v.redundancy}")
    if len({leg.node for leg in v.legs}) != len(v.legs):
        out.append(f"{v.name}: two legs on one node")
    for leg in v.legs:
        if leg.state != "in_sync":
            out.append(f"{v.name}: leg {leg.leg_id} is {leg.state}")
        if not usable(leg.node, leg.device):
            out.append(f"{v.name}: leg {leg.leg_id} on unusable {leg.node}/{leg.device}")
    if st is None:
        return [*out, f"{v.name}: no status"]
    if st.get("node") != v.owner:
        out.append(f"{v.name}: status from {st.get('node')}, owner {v.owner}")
    elif st.get("generation") != v.generation:
        out.append(f"{v.name}: status of generation {st.get('generation')}, mapping {v.generation}")
    if st.get("raid_state") != "online":
        out.append(f"{v.name}: raid {st.get('raid_state')}")
    if sorted(st.get("in_sync", ())) != sorted(leg.leg_id for leg in v.legs):
        out.append(f"{v.name}: in sync {st.get('in_sync')}, legs {[x.leg_id for x in v.legs]}")
    if st.get("held"):
        out.append(f"{v.name}: held")
    if "rebuild" in st:
        out.append(f"{v.name}: rebuilding {st['rebuild']}")
    return out


def raid_problems(v: Volume, obs: Observed) -> list[str]:
    """Whether the owner's SPDK (``obs``) holds the volume's raid online with exactly the legs of
    its mapping as configured members and no rebuild running, under its hold layer."""
    raid = obs.raids.get(names.raid(v.name))
    if raid is None:
        return [f"{v.name}: no raid on {v.owner}"]
    out = []
    if raid.state != "online":
        out.append(f"{v.name}: raid {raid.state} on {v.owner}")
    members = leg_bdevs(v, obs, v.owner)
    legs = sorted(members.get(m, f"?{m}") for m in raid.configured())
    if legs != sorted(leg.leg_id for leg in v.legs):
        mapped = sorted(x.leg_id for x in v.legs)
        out.append(f"{v.name}: raid members {list(raid.configured())} (legs {legs}), mapping {mapped}")
    if raid.rebuild_target is not None:
        out.append(f"{v.name}: rebuild onto {raid.rebuild_target} running")
    if names.hold(v.name) not in obs.bdevs:
        out.append(f"{v.name}: no hold layer on {v.owner}")
    return out


def stray_problems(node: str, obs: Observed, state: State) -> list[str]:
    """Objects a node's SPDK still holds that no mapping gives it: raids and hold layers of volumes
    it does not own, leg lvols of no volume."""
    owned = {v.name for v in state.volumes.values() if v.owner == node}
    out = [f"{node}: raid {r} of a volume it does not own" for r in obs.raids if names.volume_of_raid(r) not in owned]
    out += [
        f"{node}: hold layer {b} of a volume it does not own"
        for b in obs.bdevs
        if names.volume_of_hold(b) is not None and names.volume_of_hold(b) not in owned
    ]
    wanted = {leg.leg_id for v in state.volumes.values() for leg in v.legs if leg.node == node}
    for lvs in obs.lvstores:
        for lvol in obs.lvols(lvs):
            if LEG_ID.match(lvol) and lvol not in wanted:
                out.append(f"{node}: lvol {lvs}/{lvol} of no leg")
    return out


def pattern_offsets(v: Volume) -> tuple[int, ...]:
    return (0, (v.size_bytes // 2) // BLOCK * BLOCK, v.size_bytes - BLOCK)


def pattern(v: Volume, offset: int) -> bytes:
    """One block of data only this volume has at this offset."""
    seed = hashlib.sha256(f"{v.uuid}/{offset}".encode()).digest()
    return (seed * (BLOCK // len(seed) + 1))[:BLOCK]


class Ops:
    """Agents, controllers, admin calls, database reads and fault injection on one Cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.controllers: dict[str, Controller] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="svctl-"))  # short: UNIX socket paths are limited
        self._store: Store | None = None
        self._cancel = on_exit(self._remove_dir)
        self.agent_extra: dict[str, list[str]] = {}  # node -> more agent options
        self.agent_spdk: dict[str, str] = {}  # node -> the SPDK address its agent uses, if not the socket
        self.controller_extra: list[str] = []  # more options for every controller
        self.pulled: dict[tuple[str, str], dict[str, Any]] = {}  # real SPDK: the aio bdevs fail_device deleted

    # ---- processes -------------------------------------------------------------------------
    def device_id(self, node: str, device: str) -> str:
        """The cluster-wide id of a node's device file (``n1`` + ``d0``)."""
        return f"{node}{device}"

    def device_ids(self, node: str) -> list[str]:
        return [self.device_id(node, d.id) for d in self.c.node(node).devices]

    def agent_argv(self, node: str) -> list[str]:
        n = self.c.node(node)
        argv = [sys.executable, "-m", "spdkvirt.cli.main", "agent", "--node-id", n.name]
        argv += ["--spdk-socket", self.agent_spdk.get(node, n.spdk_socket), "--store", self.c.store_url]
        argv += ["--address", n.address]
        for d in n.devices:
            argv += ["--device", f"{self.device_id(node, d.id)}={d.path}"]
        return [*argv, *self.agent_extra.get(node, ())]

    def start_agents(self, nodes: Iterable[str] | None = None) -> None:
        for node in nodes if nodes is not None else self.c.node_names:
            self.c.start_in(node, f"{node}-agent", self.agent_argv(node))

    def start_controller(self, name: str) -> Controller:
        """A controller in the root namespace."""
        ctl = Controller(name, str(self._dir / f"{name}.sock"))
        with contextlib.suppress(FileNotFoundError):
            Path(ctl.socket).unlink()
        argv = [sys.executable, "-m", "spdkvirt.cli.main", "controller", "--store", self.c.store_url]
        argv += ["--name", name, "--api-socket", ctl.socket, *self.controller_extra]
        self.c.procs.start(name, argv, group="controllers")
        self.controllers[name] = ctl
        return ctl

    def controller_alive(self, name: str) -> bool:
        return self.c.procs.alive(name)

    def stop_controller(self, name: str) -> None:
        self.c.procs.stop(name)

    def close(self) -> None:
        self._cancel()
        self._remove_dir()

    def _remove_dir(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    # ---- the admin API ---------------------------------------------------------------------
    async def admin(self, method: str, params: Mapping[str, Any] | None = None, *, within: float = 60.0) -> Any:
        """Call ``method`` on whichever controller leads (retrying others and NotLeader answers)."""
        deadline = time.monotonic() + within
        last: Exception | None = None
        while time.monotonic() < deadline:
            for name, ctl in self.controllers.items():
                if not self.controller_alive(name):
                    continue
                client = ApiClient(f"unix://{ctl.socket}", timeout=max(1.0, deadline - time.monotonic()))
                try:
                    return await client.call(method, params)
                except (NotLeader, ApiUnreachable) as e:
                    last = e
                finally:
                    await client.close()
            await asyncio.sleep(0.2)
        raise NotYet(f"{method}: no controller answered within {within} s (last: {last})")

    async def create_volumes(self, count: int, *, prefix: str = "vol", sizes: Sequence[int] = (16, 24, 32)) -> None:
        """``count`` mirrored volumes (redundancy 2), made a few at a time."""
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with sem:
                params = {"name": f"{prefix}{i:02d}", "size_bytes": sizes[i % len(sizes)] * MiB, "redundancy": 2}
                await self.admin("volume_create", params)

        await asyncio.gather(*(one(i) for i in range(count)))

    # ---- the database ----------------------------------------------------------------------
    async def store(self) -> Store:
        if self._store is None:
            self._store = await open_store(self.c.store_url)
        return self._store

    async def close_store(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def state(self) -> State:
        s = await self.store()
        vols, sts, devs, eps, nodes, exps = await asyncio.gather(
            s.range(keys.prefix("volume")),
            s.range(keys.prefix("status")),
            s.range(keys.devices()),
            s.range(keys.prefix("epoch")),
            s.range(keys.prefix("node")),
            s.range(keys.prefix("export")),
        )
        volumes = {kv.value["name"]: Volume.of(kv.value) for kv in vols.kvs}
        devices = {(kv.value["node"], kv.value["device_id"]): Device.of(kv.value) for kv in devs.kvs}
        return State(
            volumes,
            {kv.value["volume"]: kv.value for kv in sts.kvs},
            devices,
            [kv.value for kv in eps.kvs],
            {kv.value["node_id"]: kv.value for kv in nodes.kvs},
            [kv.value for kv in exps.kvs],
        )

    async def wait_registered(self, nodes: Sequence[str], *, within: float = 30.0) -> None:
        """Until every node is up, holds its liveness lease (for its current boot) and has all its
        devices usable, in the store and, when a controller runs, in the leader's view too (its
        mirror may lag the store by a moment): only then does placement see every node."""

        async def problems() -> list[str]:
            st = await self.state()
            alive = {kv.value["node"]: kv.value for kv in (await (await self.store()).range(keys.prefix("alive"))).kvs}
            out = []
            for node in nodes:
                n = st.nodes.get(node)
                if n is None or n.get("state") != "up":
                    out.append(f"{node}: {n.get('state') if n else 'not registered'}")
                elif alive.get(node, {}).get("boot_id") != n.get("boot_id"):
                    out.append(f"{node}: no liveness record for boot {n.get('boot_id')}")
                out += [f"{node}/{d}: not usable" for d in self.device_ids(node)
                        if not (st.devices.get((node, d)) and st.devices[(node, d)].usable)]  # fmt: skip
            if not out and self.controllers:
                seen = await self.admin("cluster_status")
                devices = sum(len(self.device_ids(n)) for n in nodes)
                if seen["nodes"]["up"] < len(nodes) or seen["devices"].get("available", 0) < devices:
                    out.append(f"the leader sees {seen['nodes']} nodes and {seen['devices']} devices")
            return out

        await settled(problems, within=within, what="every node registered")

    async def leader(self) -> LeaderInfo | None:
        return await (await self.store()).election(ELECTION).leader()

    async def wait_leader(self, name: str, *, within: float = 30.0) -> LeaderInfo:
        async def leads() -> LeaderInfo | None:
            info = await self.leader()
            return info if info is not None and info.holder == name else None

        return await until(leads, within=within, what=f"{name} leads")

    # ---- SPDK targets ----------------------------------------------------------------------
    async def observe(self, node: str) -> Observed:
        async with self.c.client(node, timeout=10.0) as client:
            results = await client.gather(QUERIES, timeout=10.0)
        return observe({m: r for (m, _), r in zip(QUERIES, results, strict=True)})

    async def spdk_call(self, node: str, method: str, params: Mapping[str, Any] | None = None) -> Any:
        async with self.c.client(node, timeout=10.0) as client:
            return await client.call(method, dict(params) if params is not None else None)

    async def fail_device(self, node: str, device: str) -> None:
        """The drive is pulled: its bdev (named as the device id) is hot-removed. A real SPDK has
        no fault injection: its aio bdev is deleted (what SPDK does when the file goes away)."""
        if self.c.real_spdk is None:
            await self.spdk_call(node, "sim_bdev_fail", {"name": device})
            return
        [bdev] = await self.spdk_call(node, "bdev_get_bdevs", {"name": device})
        self.pulled[(node, device)] = bdev
        await self.spdk_call(node, "bdev_aio_delete", {"name": device})

    async def restore_device(self, node: str, device: str) -> None:
        """The same drive comes back (same file, same uuid)."""
        if self.c.real_spdk is None:
            await self.spdk_call(node, "sim_bdev_restore", {"name": device})
            return
        bdev = self.pulled.pop((node, device))
        await self.spdk_call(node, "bdev_aio_create", {
            "filename": bdev["driver_specific"]["aio"]["filename"], "name": device,
            "block_size": bdev["block_size"], "uuid": bdev["uuid"],
        })  # fmt: skip

    # ---- host data through the exports ------------------------------------------------------
    async def export_all(self) -> None:
        """An NVMe-oF export (any host) of every volume."""
        st = await self.state()
        sem = asyncio.Semaphore(8)

        async def one(name: str) -> None:
            async with sem:
                await self.admin("export_create", {"volume": name, "protocol": "nvmf", "allow_any_host": True})

        await asyncio.gather(*(one(n) for n in sorted(st.volumes)))

    async def _connect(self, v: Volume) -> nvme_host.HostConnection | nvmetcp.HostConnection:
        """A host connection from the test process to the volume's export on its owner: NVMe/TCP
        to a real SPDK, the simulator's own wire to a simulator."""
        owner = self.c.node(v.owner)
        hostid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, HOSTNQN))
        if self.c.real_spdk is not None:
            return await nvmetcp.connect(owner.address, "4420", names.volume_nqn(v.name), HOSTNQN, hostid)
        return await nvme_host.connect(owner.address, "4420", names.volume_nqn(v.name), HOSTNQN, hostid, limit_s=5.0)

    async def write_patterns(self, volumes: Iterable[str] | None = None) -> None:
        """Write each volume's own pattern at its start, middle and end, through its export."""
        st = await self.state()
        for name in sorted(st.volumes if volumes is None else volumes):
            v = st.volumes[name]
            conn = await self._connect(v)
            try:
                for offset in pattern_offsets(v):
                    status = await asyncio.wait_for(conn.write(1, offset, pattern(v, offset)), IO_TIMEOUT)
                    assert status == OK, f"{name}: write at {offset}: {status}"
            finally:
                await conn.shutdown()

    async def pattern_problems(self, volumes: Iterable[str] | None = None) -> list[str]:
        """Read the patterns back through each volume's export on its owner now."""
        st = await self.state()
        out: list[str] = []
        for name in sorted(st.volumes if volumes is None else volumes):
            v = st.volumes[name]
            try:
                conn = await self._connect(v)
            except (ConnectRejected, WireError) as e:
                out.append(f"{name}: cannot connect to its export on {v.owner}: {e}")
                continue
            try:
                for offset in pattern_offsets(v):
                    status, data = await asyncio.wait_for(conn.read(1, offset, BLOCK), IO_TIMEOUT)
                    if status != OK:
                        out.append(f"{name}: read at {offset}: {status}")
                    elif data != pattern(v, offset):
                        out.append(f"{name}: wrong data at {offset} (zero: {data == bytes(BLOCK)})")
            except WireError as e:
                out.append(f"{name}: {e}")
            except TimeoutError:
                out.append(f"{name}: a read got no answer within {IO_TIMEOUT} s (I/O held?)")
            finally:
                await conn.shutdown()
        return out

    async def read_waits(self, volume: str, *, wait: float) -> bool:
        """Whether a read of the volume through its export gets no answer within ``wait`` s."""
        st = await self.state()
        conn = await self._connect(st.volumes[volume])
        try:
            await asyncio.wait_for(conn.read(1, 0, BLOCK), wait)
        except TimeoutError:
            return True
        finally:
            conn.close()
        return False

    # ---- checks ----
    async def settled(self, problems: Callable[[], Awaitable[list[str]]], *, within: float, what: str) -> float:
        """``settled`` that, when time runs out, also describes the volumes that are not healthy."""
        return await settled(problems, within=within, what=what, explain=self.describe)

    async def describe(self) -> list[str]:
        """Each unhealthy volume as the database and its owner's SPDK show it."""
        st = await self.state()
        out = []
        for v in st.volumes.values():
            status = st.statuses.get(v.name)
            if not volume_problems(v, status, lambda node, device: True):
                continue
            legs = ", ".join(f"{x.leg_id}#{x.incarnation}@{x.node}/{x.device}:{x.state}" for x in v.legs)
            out.append(f"{v.name} (gen {v.generation}, epoch {v.epoch}, {v.state}) owner {v.owner}: {legs}")
            out.append(f"  status: {dict(status) if status is not None else None}")
            if not self.c.sim_alive(v.owner):
                continue
            obs = await self.observe(v.owner)
            raid = obs.raids.get(names.raid(v.name))
            members = leg_bdevs(v, obs, v.owner)
            if raid is None:
                out.append("  no raid")
                continue
            shown = [f"{m.name}={members.get(m.name or '', '?')}{'' if m.configured else '(unconfigured)'}"
                     for m in raid.members]  # fmt: skip
            out.append(f"  raid {raid.state}: {shown}, rebuild {raid.rebuild_target} {raid.rebuild_percent}%")
            remote = [c for c in obs.controllers.values() if c.name.startswith(names.REMOTE_PREFIX)]
            out.append(f"  remote controllers: {[(c.name, c.state) for c in remote]}")
            out += [f"  {p}" for p in await self.pattern_problems([v.name])]
        return out

    async def redundancy_problems(self, live: Iterable[str], volumes: Iterable[str] | None = None) -> list[str]:
        """Every volume (or those named) back at full redundancy on live nodes, in the database
        and in the owners' SPDK, and no live node holding anything of a volume it should not."""
        live = set(live)
        st = await self.state()
        wanted = sorted(st.volumes if volumes is None else volumes)

        def usable(node: str, device: str) -> bool:
            d = st.devices.get((node, device))
            return node in live and d is not None and d.usable and st.nodes.get(node, {}).get("state") == "up"

        out = [p for name in wanted for p in volume_problems(st.volumes[name], st.statuses.get(name), usable)]
        out += [f"epoch {e['number']} still {e['phase']}" for e in st.open_epochs()]
        if out:
            return out
        observed = dict(zip(sorted(live), await asyncio.gather(*(self.observe(n) for n in sorted(live))), strict=True))
        for name in wanted:
            v = st.volumes[name]
            if v.owner not in observed:
                out.append(f"{name}: owner {v.owner} is not live")
                continue
            out += raid_problems(v, observed[v.owner])
        for node, obs in observed.items():
            out += stray_problems(node, obs, st)
        return out
