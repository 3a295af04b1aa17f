"""The node agent's main loop: register, mirror the database, reconcile SPDK, quiesce on demand.

Reconciling is level-triggered: any change in the database or a timer starts a pass (observe the
node's SPDK in one batch, plan, execute, report). Passes never overlap; quiescence waits for the
pass under way (short-term work completes), then holds host I/O of the affected volumes and
halts their rebuilds, and only then acknowledges. Instructions are epoch records; one carrying an
older leader token than the agent has seen is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from spdkvirt.agent import devices as devmod
from spdkvirt.agent.devices import DeviceSpec
from spdkvirt.agent.executor import Outcome, execute
from spdkvirt.mirror import Mirror, cancel_all
from spdkvirt.model import names
from spdkvirt.model.observed import QUERIES, Observed, observe
from spdkvirt.model.plan import NodeView, Options, plan_node
from spdkvirt.model.records import Device, Epoch, Export, Fence, Node, Volume, now
from spdkvirt.model.status import leg_bdevs, volume_status
from spdkvirt.model.steps import GONE, Plan, Stage, Step
from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import SpdkConnectError, SpdkConnectionLost, SpdkError, SpdkTransportError
from spdkvirt.spdk.methods import Spdk
from spdkvirt.store import Conflict, Lease, Store, StoreError, keys

log = logging.getLogger(__name__)

BOOT_PREFIX = "svboot_"
NOTIFY_EVERY = 0.05
RAID_EVERY = 0.25
#: SPDK whose socket has refused or dropped every call for this long is gone (killed, crashed)
SPDK_LOST_AFTER = 1.0
#: SPDK that accepts calls but has answered none for this long is hung (a busy one answers sooner:
#: a batch of thousands of steps takes seconds, not this)
SPDK_HUNG_AFTER = 15.0
#: part of the lease TTL after the last renewal when the agent holds every volume it owns: the
#: master moves them only after the TTL (and a margin), so they are held before anyone else serves them
ISOLATE_AT = 0.5
#: how long one watch call may take before it is asked again
WATCH_TIMEOUT = 2.0
#: findings that mean the owner cannot serve a volume as mapped yet
BLOCKING = frozenset({"waiting_for_legs", "leg_unreachable", "no_source", "identity_mismatch"})


@dataclass(frozen=True)
class AgentConfig:
    node_id: str
    address: str
    spdk_socket: str
    devices: tuple[DeviceSpec, ...] = ()
    nvmf_port: int = 4420
    lease_ttl: int = 2
    iscsi_port: int = 3260
    resync_interval: float = 2.0
    rpc_timeout: float = 30.0
    options: Options = field(default_factory=Options)
    fence: Fence | None = None


def spdk_lost(error: SpdkError, quiet: float) -> bool:
    """Whether SPDK counts as lost after a watch call ended with ``error``, ``quiet`` seconds after
    its last answer: gone when its socket refuses or drops calls for ``SPDK_LOST_AFTER``, hung when
    it answers nothing for ``SPDK_HUNG_AFTER``; an error it answered with is no sign of either."""
    if isinstance(error, (SpdkConnectError, SpdkConnectionLost)):
        return quiet >= SPDK_LOST_AFTER
    return isinstance(error, SpdkTransportError) and quiet >= SPDK_HUNG_AFTER


def parsers() -> dict[str, Any]:
    return {
        "node": Node.of,
        "device": Device.of,
        "volume": Volume.of,
        "export": Export.of,
        "epoch": Epoch.of,
    }


class Agent:
    def __init__(self, cfg: AgentConfig, store: Store, client: SpdkClient) -> None:
        self.cfg = cfg
        self.me = cfg.node_id
        self.store = store
        self.client = client
        self.spdk = Spdk(client)
        self.mirror = Mirror(store, parsers())
        self.node = Node(cfg.node_id, cfg.address, nvmf_port=cfg.nvmf_port)
        sock = cfg.spdk_socket
        self.spdk_address = sock if "://" in sock else os.path.abspath(sock)
        self.lease: Lease | None = None
        self.kick = asyncio.Event()
        self.lock = asyncio.Lock()
        self.obs: Observed | None = None
        self.held: set[str] | None = None
        self.applied: dict[str, int] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.rebuilt: dict[str, set[str]] = {}
        self.added: dict[str, set[str]] = {}  # volume -> members this node added to its raid: rebuilt onto
        self.failing: set[tuple[str, str]] = set()
        self.urgent = 0  # quiesce/resume instructions waiting for the pass under way
        self.instructions = 0  # bumped by every quiesce/resume: a plan made before one is stale
        self.notify_next = 0
        self.acked: dict[tuple[int, str, int], dict[str, Any]] = {}  # (epoch, phase, token) -> answer written
        self.max_token = 0
        self.isolated = False  # holding every owned volume: the lease was lost
        self.fresh: dict[str, int] = {}  # volume -> mapping generation in the store when this node came back
        self.spdk_ok = asyncio.Event()  # clear while SPDK is lost: nothing is registered then
        self.spdk_ok.set()
        self.passes = 0
        self._tasks: list[asyncio.Task[Any]] = []

    # ---- start ----------------------------------------------------------------------------
    async def boot_id(self) -> str:
        """The identity of the SPDK process: a marker bdev made by the first agent that saw it."""
        bdevs = await self.spdk.bdev_get_bdevs()
        for b in bdevs:
            if b["name"].startswith(BOOT_PREFIX):
                return str(b["name"][len(BOOT_PREFIX) :])
        boot = uuidlib.uuid4().hex[:16]
        await self.spdk.bdev_null_create(BOOT_PREFIX + boot, 1, 512)
        return boot

    async def register(self) -> None:
        """Bring the devices in, write the node, device and liveness records."""
        self.notify_next = 0
        transports = await self.spdk.nvmf_get_transports()
        if not any(t.get("trtype") == "TCP" for t in transports):
            await self.spdk.nvmf_create_transport("TCP")
        boot = await self.boot_id()
        known = {d.device_id: (d, rev) for d, rev in await self._my_devices()}
        for spec in self.cfg.devices:
            old, rev = known.get(spec.device_id, (None, 0))
            dev = await devmod.attach(self.spdk, self.me, spec, old)
            if old is None or dev.record() != old.record():
                if old is not None and dev.state != old.state:
                    dev = replace(dev, generation=old.generation + 1)
                await self.store.put(keys.device(self.me, spec.device_id), dev.record(), expect=rev)
        kv = await self.store.get(keys.node(self.me))
        generation = Node.of(kv.value).generation + 1 if kv is not None else 1
        cfg = self.cfg
        self.node = Node(self.me, cfg.address, "up", generation, boot, cfg.nvmf_port, spdk=self.spdk_address,
                         iscsi_port=cfg.iscsi_port, fence=cfg.fence)  # fmt: skip
        await self._go_live()  # liveness first: a node record without it would be taken for dead
        await self.store.put(keys.node(self.me), self.node.record())

    async def _go_live(self) -> None:
        if self.lease is None or self.lease.lost.is_set():
            self.lease = await self.store.grant_lease(self.cfg.lease_ttl)
        record = {"kind": "alive", "schema_version": 1, "node": self.me, "boot_id": self.node.boot_id,
                  "pid": os.getpid(), "since": now()}  # fmt: skip
        await self.store.put(keys.alive(self.me), record, lease=self.lease)
        self.isolated = False

    async def come_back(self, marked: Node) -> None:
        """The master declared this node down (its lease ran out, or it missed a deadline): hold
        every volume it owns first, then read which volumes are still its own from the store
        itself (this node's view may lag: it follows each kind of record on its own), and register
        again as a fresh member. A volume the view still shows as owned, at an older mapping than
        the store's, stays held until the view catches up (see ``wanted_held``). Not while SPDK is
        lost: the node registers again when SPDK answers."""
        if not self.spdk_ok.is_set():
            return
        log.warning("node marked %s (%s): holding every owned volume, then registering again", marked.state,
                    marked.extra)  # fmt: skip
        self.isolated = True
        await self.hold_all()
        try:
            r = await self.store.range(keys.prefix("volume"))
            self.fresh = {str(kv.value.get("name")): int(kv.value.get("generation", 0)) for kv in r.kvs}
            self.node = replace(self.node, state="up", generation=marked.generation + 1)
            await self.store.put(keys.node(self.me), self.node.record())
        except StoreError as e:
            log.warning("registering again: %s (the lease loop tries again)", e)
            return
        if self.lease is not None and not self.lease.lost.is_set():
            self.isolated = False
        self.kick.set()

    async def _my_devices(self) -> list[tuple[Device, int]]:
        r = await self.store.range(keys.devices(self.me))
        return [(Device.of(kv.value), kv.mod_revision) for kv in r.kvs]

    async def run(self) -> None:
        """Register, then reconcile until cancelled."""
        await self.register()
        self.mirror.listeners.append(self._heard)
        self.mirror.start()
        self._tasks = [
            asyncio.get_running_loop().create_task(self._reconcile_loop(), name="reconcile"),
            asyncio.get_running_loop().create_task(self._lease_loop(), name="lease"),
            asyncio.get_running_loop().create_task(self._watch_spdk(), name="watch spdk"),
            asyncio.get_running_loop().create_task(self._isolation_loop(), name="isolation"),
        ]
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.close()

    async def close(self) -> None:
        await cancel_all(self._tasks)
        await self.mirror.close()

    # ---- hearing the database --------------------------------------------------------------
    def _heard(self, kind: str, key: str, old: Any, new: Any) -> None:
        if kind == "node" and isinstance(new, Node) and new.node_id == self.me and new.state != "up":
            self._spawn(self.come_back(new))
        if kind == "epoch" and isinstance(new, Epoch) and self.me in new.nodes:
            self.max_token = max(self.max_token, new.token)
            if new.phase == "quiescing":
                self._spawn(self.quiesce(new))
            elif new.phase == "resuming":
                self._spawn(self.resume(new))
        self.kick.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    # ---- what the database wants of this node ----------------------------------------------
    def volumes(self) -> dict[str, Volume]:
        return {v.name: v for v in self.mirror.values("volume")}

    def nodes(self) -> dict[str, Node]:
        out = {n.node_id: n for n in self.mirror.values("node")}
        out[self.me] = self.node
        return out

    def exports(self) -> dict[str, tuple[Export, ...]]:
        out: dict[str, list[Export]] = {}
        for e in self.mirror.values("export"):
            out.setdefault(e.volume, []).append(e)
        return {k: tuple(v) for k, v in out.items()}

    def epochs(self) -> list[Epoch]:
        """Open epochs that name this node, from the newest leader seen."""
        return [
            e
            for e in self.mirror.values("epoch")
            if self.me in e.nodes and e.phase not in ("done", "aborted") and e.token >= self.max_token
        ]

    def owned(self) -> set[str]:
        return {v.name for v in self.mirror.values("volume") if v.owner == self.me}

    def wanted_held(self) -> frozenset[str]:
        owned = self.owned()
        if self.isolated:
            return frozenset(owned)
        # owned in this node's view, but the store held a newer mapping when it came back: wait
        held: set[str] = {v.name for v in self.mirror.values("volume")
                          if v.owner == self.me and v.generation < self.fresh.get(v.name, 0)}  # fmt: skip
        for e in self.epochs():
            if e.holds:
                held |= e.volumes & owned
        return frozenset(held)

    # ---- reconcile ---------------------------------------------------------------------------
    async def _reconcile_loop(self) -> None:
        await self.mirror.synced.wait()
        while True:
            await self.spdk_ok.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg.resync_interval):
                    await self.kick.wait()
            self.kick.clear()
            try:
                again = await self.reconcile()
            except (SpdkError, StoreError, OSError) as e:
                log.warning("reconcile: %s", e)
                again = True
                await asyncio.sleep(0.2)
            except Exception:
                log.exception("reconcile pass %d failed", self.passes)
                again = True
                await asyncio.sleep(1.0)
            if again:
                await asyncio.sleep(0.05 if self.failing else 0.0)
                self.kick.set()

    async def observe(self) -> Observed:
        results = await self.client.gather(QUERIES, timeout=self.cfg.rpc_timeout)
        held = frozenset(self.held) if self.held is not None else None
        self.obs = observe({m: r for (m, _), r in zip(QUERIES, results, strict=True)}, held)
        return self.obs

    async def reconcile(self) -> bool:
        """One pass; True when another should follow soon (work was done or failed)."""
        self.passes += 1
        instructions = self.instructions
        obs = await self.observe()
        if BOOT_PREFIX + self.node.boot_id not in obs.bdevs:
            # SPDK restarted under this agent: it holds nothing any more; start over as a new boot
            log.warning("SPDK restarted (boot %s gone): registering again", self.node.boot_id)
            self.forget_spdk()
            await self.register()
            obs = await self.observe()
        self.forget_adds(obs)
        await self.check_devices(obs)
        # a record this agent cannot read is unknown, not absent: then nothing unwanted is removed
        complete = self.mirror.complete("volume", "export", "node")
        added = {v: frozenset(m) for v, m in self.added.items()}
        view = NodeView(
            self.node, self.nodes(), self.volumes(), self.exports(), self.wanted_held(), complete, self.cfg.options,
            added,
        )  # fmt: skip
        plan = plan_node(view, obs)
        async with self.lock:
            if self.urgent or instructions != self.instructions:
                return True  # quiescence came first: this plan is stale, make another
            outcome = (
                await execute(self.client, plan, deadline=self.cfg.rpc_timeout, stop=lambda: self.urgent > 0)
                if plan
                else Outcome()
            )
        if outcome.failed:
            fresh = {(s.volume, s.method) for s, _ in outcome.failed} - self.failing
            level = logging.INFO if fresh else logging.DEBUG
            log.log(level, "pass %d: %d step(s) failed: %s", self.passes, len(outcome.failed), outcome.summary())
        self.failing = {(s.volume, s.method) for s, _ in outcome.failed}
        self.remember_holds(outcome.done, view.held if self.held is None else None)
        self.remember_adds(outcome.done)
        for v in view.volumes.values():
            if v.owner == self.me and v.name not in outcome.failed_volumes():
                self.applied[v.name] = v.generation
        if self.urgent:
            return True
        await self.report(view, obs, plan)
        await self.ack_converged(plan, outcome)
        return bool(plan.steps)

    def forget_spdk(self) -> None:
        """What this agent remembers of its SPDK (holds, reported statuses, members it added), for
        an SPDK that holds nothing of it any more (restarted, or lost)."""
        self.held = None
        self.statuses.clear()
        self.added.clear()

    def remember_holds(self, done: Iterable[Step], initial: frozenset[str] | None) -> None:
        held = set(initial) if initial is not None else (self.held or set())
        for s in done:
            if s.method == "bdev_error_inject_error":
                held.add(s.volume)
            elif s.method in ("bdev_error_resume_pending", "bdev_error_delete"):
                held.discard(s.volume)
        self.held = held

    def remember_adds(self, done: Iterable[Step]) -> None:
        """Members this node added to a raid: SPDK rebuilds onto each, and a rebuild may end before
        the next observation shows it running."""
        for s in done:
            if s.method == "bdev_raid_add_base_bdev":
                self.added.setdefault(s.volume, set()).add(str(s.params["base_bdev"]))
            elif s.method in ("bdev_raid_create", "bdev_raid_delete"):
                # a raid made again starts with no member proven rebuilt
                self.added.pop(s.volume, None)
                self.rebuilt.pop(s.volume, None)

    def forget_adds(self, obs: Observed) -> None:
        """Keep only the added members SPDK still has configured (under their bdev names): one it
        dropped (a failed or halted rebuild) is no longer a copy."""
        for volume, added in list(self.added.items()):
            raid = obs.raids.get(names.raid(volume))
            configured = set(raid.configured()) if raid is not None else set()
            kept = {b.name for b in map(obs.find, added) if b is not None and b.name in configured}
            if kept:
                self.added[volume] = kept
            else:
                del self.added[volume]

    # ---- devices -------------------------------------------------------------------------------
    async def check_devices(self, obs: Observed) -> None:
        for key, entry in list(self.mirror.data["device"].items()):
            dev: Device = entry.value
            if dev.node != self.me or dev.state in ("maintenance", "removed"):
                continue
            state, reason = devmod.health(dev, obs)
            fresh = devmod.with_space(dev, obs)
            changed_space = abs(fresh.free_bytes - dev.free_bytes) > max(dev.size_bytes // 100, 1)
            if state == dev.state and not changed_space:
                continue
            nxt = replace(fresh, state=state, generation=dev.generation + (state != dev.state))
            record = nxt.record()
            if reason:
                record["reason"] = reason
            record["state_changed_at" if state != dev.state else "updated_at"] = now()
            with contextlib.suppress(Conflict):
                await self.store.put(key, record, expect=entry.mod_revision)
            if state != dev.state:
                log.warning("device %s: %s %s", dev.device_id, state, reason)

    # ---- reporting -----------------------------------------------------------------------------
    async def report(self, view: NodeView, obs: Observed, plan: Plan) -> None:
        writes = []
        held = self.held or set()
        for v in view.volumes.values():
            if v.owner != self.me:
                continue
            raid = obs.raids.get(names.raid(v.name))
            seen = self.rebuilt.setdefault(v.name, set())
            if raid is not None:  # a rebuild running, or one this node started that ended since
                onto = self.added.get(v.name, set()) | {raid.rebuild_target or ""}
                onto &= set(raid.configured())
                seen.update(leg for b, leg in leg_bdevs(v, obs, self.me).items() if b in onto)
            seen &= {x.leg_id for x in v.legs if x.state != "in_sync"}
            applied = self.applied.get(v.name, 0)
            st = volume_status(v, obs, self.me, plan.findings, v.name in held, applied, seen)
            if self.statuses.get(v.name) != st:
                writes.append((v.name, st))
        sem = asyncio.Semaphore(32)

        async def put(name: str, st: dict[str, Any]) -> None:
            async with sem:
                await self.store.put(keys.status(name), dict(st, at=now()))
                self.statuses[name] = st

        await asyncio.gather(*(put(n, s) for n, s in writes))

    async def ack(
        self,
        epoch: Epoch,
        phase: str,
        volumes: Iterable[str] = (),
        failed: Mapping[str, str] | None = None,
        applied: Mapping[str, int] | None = None,
        trying: Mapping[str, str] | None = None,
    ) -> None:
        """Answer ``phase`` of ``epoch``: the volumes done (with the mapping generations applied, in
        remapping), those that failed and those still tried after an error, each with why. Written
        again whenever the answer changes."""
        vols, bad = sorted(volumes), dict(sorted((failed or {}).items()))
        errs = dict(sorted({**(trying or {}), **bad}.items()))
        record = {"kind": "ack", "schema_version": 1, "epoch": epoch.number, "node": self.me, "phase": phase,
                  "leader_token": epoch.token, "status": "failed" if bad else "ok"}  # fmt: skip
        if vols:
            record["volumes"] = vols
        if bad:
            record["failed"] = bad
        if errs:
            record["error"] = "; ".join(f"{v}: {why}" for v, why in list(errs.items())[:5])[:4000]
        if applied:
            record["applied"] = dict(sorted(applied.items()))
        mark = (epoch.number, phase, epoch.token)
        if self.acked.get(mark) == record:
            return
        await self.store.put(keys.ack(epoch.number, self.me), record | {"at": now()})
        self.acked[mark] = record

    async def ack_converged(self, plan: Plan, outcome: Outcome) -> None:
        """Answer remapping epochs, volume by volume: done once this node holds a volume's new
        mapping (no steps left, nothing blocking); the others are still under way, even where a step
        failed (a leg's node may not export it yet): the master waits for them up to its deadline,
        then fails them, not the node. The answer says which steps failed, for the operator."""
        volumes = self.volumes()
        errors = outcome.errors()
        busy = {s.volume for s in plan.steps if s.stage is not Stage.HOLD}
        busy |= {f.volume for f in plan.findings if f.kind in BLOCKING}
        for e in self.epochs():
            if e.phase != "remapping":
                continue
            mine = [volumes[n] for n in sorted(e.volumes) if n in volumes and self.me in volumes[n].nodes()]
            done = {v.name: v.generation for v in mine if v.name not in busy and v.name not in errors}
            trying = {v.name: errors[v.name] for v in mine if v.name in errors}
            await self.ack(e, "remapping", done, applied=done, trying=trying)

    # ---- quiescence --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def urgently(self) -> AsyncIterator[None]:
        """The pass lock, taken ahead of the reconcile loop: the pass under way stops after the
        stage it has sent (short-term work completes, nothing new starts)."""
        self.urgent += 1
        try:
            async with self.lock:
                self.instructions += 1
                yield
        finally:
            self.urgent -= 1

    def hold_step(self, volume: str, why: str) -> Step:
        """The step that makes host I/O of ``volume`` wait (queued in its hold bdev)."""
        params = {"name": names.hold(volume), "io_type": "all", "error_type": "pending",
                  "num": self.cfg.options.hold_count}  # fmt: skip
        return Step(Stage.HOLD, "bdev_error_inject_error", params, volume, why, frozenset({GONE}))

    def current(self, epoch: Epoch, phase: str) -> bool:
        """Whether ``epoch`` is still in ``phase`` under the newest leader this node has seen."""
        entry = self.mirror.get("epoch", keys.epoch(epoch.number))
        now_ = entry.value if entry is not None else epoch
        return now_.phase == phase and now_.token == epoch.token and epoch.token >= self.max_token

    async def answer(self, epoch: Epoch, phase: str, work: Any) -> None:
        """Do ``work`` for ``phase`` of ``epoch`` and answer it; when the work cannot be done at all
        (SPDK or the store out of reach), try again while the epoch is still in that phase."""
        while self.current(epoch, phase):
            try:
                await work(epoch)
                return
            except (SpdkError, StoreError, OSError) as e:
                log.warning("epoch %d: %s: %s; trying again", epoch.number, phase, e)
            await asyncio.sleep(0.2)

    async def quiesce(self, epoch: Epoch) -> None:
        await self.answer(epoch, "quiescing", self._quiesce)

    async def resume(self, epoch: Epoch) -> None:
        await self.answer(epoch, "resuming", self._resume)

    async def _quiesce(self, epoch: Epoch) -> None:
        """Hold host I/O of the affected volumes this node owns, halt their rebuilds, answer: per
        volume, held or why not."""
        started = time.monotonic()
        async with self.urgently():
            locked = time.monotonic()
            if epoch.token < self.max_token:
                return
            owned = self.owned() & epoch.volumes
            raids = {r["name"]: r for r in await self.client.call("bdev_raid_get_bdevs", {"category": "all"})}
            steps: list[Step] = []
            for name in sorted(owned):
                steps.append(self.hold_step(name, "quiesce"))
                target = (raids.get(names.raid(name)) or {}).get("process", {}).get("target")
                if target:
                    steps.append(Step(Stage.HOLD, "bdev_raid_remove_base_bdev", {"name": target}, name,
                                      "halt rebuild", frozenset({GONE})))  # fmt: skip
            outcome = await execute(self.client, Plan(tuple(steps)), deadline=self.cfg.rpc_timeout)
            self.remember_holds(outcome.done, None)
            failed = outcome.errors()
            if failed:
                log.warning("epoch %d: quiesce failed for %d volume(s): %s", epoch.number, len(failed),
                            outcome.summary())  # fmt: skip
            await self.ack(epoch, "quiescing", owned - failed.keys(), failed)
        ms = (time.monotonic() - started) * 1e3
        log.info("epoch %d: quiesced %d volume(s) in %.1f ms (lock after %.1f ms)", epoch.number, len(owned), ms,
                 (locked - started) * 1e3)  # fmt: skip

    async def _resume(self, epoch: Epoch) -> None:
        """Let held I/O of the affected volumes flow again; long work restarts in the next pass."""
        async with self.urgently():
            if epoch.token < self.max_token:
                return
            held = self.held if self.held is not None else self.owned()
            targets = sorted(held & epoch.volumes & self.owned() - self.wanted_held())
            steps = [Step(Stage.RELEASE, "bdev_error_resume_pending", {"name": names.hold(n)}, n, "resume")
                     for n in targets]  # fmt: skip
            outcome = await execute(self.client, Plan(tuple(steps)), deadline=self.cfg.rpc_timeout)
            self.remember_holds(outcome.done, None)
            failed = outcome.errors()
            if failed:
                log.warning("epoch %d: resume failed: %s", epoch.number, outcome.summary())
            await self.ack(epoch, "resuming", set(targets) - failed.keys(), failed)
        self.kick.set()

    async def _watch_spdk(self) -> None:
        """Start a pass as soon as SPDK changes by itself: its notifications (a bdev registered,
        removed or resized: a device pulled, a remote leg lost) every ``NOTIFY_EVERY`` seconds, and,
        since SPDK emits no raid events, a comparison of the raids' states every ``RAID_EVERY``."""
        last_raids: object = None
        next_raids = 0.0
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(NOTIFY_EVERY)
            if not self.spdk_ok.is_set():
                try:
                    await self.client.call("spdk_get_version", timeout=WATCH_TIMEOUT)
                except SpdkError:
                    continue
                await self._spdk_back()
                last_ok = time.monotonic()
                continue
            try:
                events = await self.client.call(
                    "notify_get_notifications", {"id": self.notify_next, "max": 1000}, timeout=WATCH_TIMEOUT
                )
                last_ok = time.monotonic()
                if events:
                    self.notify_next = int(events[-1]["id"]) + 1
                    self.kick.set()
                if time.monotonic() >= next_raids:
                    next_raids = time.monotonic() + RAID_EVERY
                    raids = await self.client.call("bdev_raid_get_bdevs", {"category": "all"}, timeout=WATCH_TIMEOUT)
                    summary = sorted(
                        (r["name"], r["state"], r["num_base_bdevs_discovered"], (r.get("process") or {}).get("target"))
                        for r in raids
                    )
                    if summary != last_raids:
                        last_raids = summary
                        self.kick.set()
            except SpdkError as e:
                log.debug("watching SPDK: %s", e)
                if spdk_lost(e, time.monotonic() - last_ok):
                    await self._spdk_lost(e)
                    last_raids = None

    async def _spdk_lost(self, error: SpdkError) -> None:
        """SPDK is gone (its socket refuses: killed, crashed) or hung (no answer for
        ``SPDK_HUNG_AFTER``): the node serves nothing any more, or nothing it can be trusted with. Its
        liveness goes at once, so the master moves its volumes and legs now (fencing it first where
        that is configured), rather than after a lease or a deadline runs out. Nothing registers
        again until SPDK answers."""
        log.error("SPDK at %s is lost (%s): leaving the cluster until it answers again", self.spdk_address, error)
        self.spdk_ok.clear()
        self.forget_spdk()
        down = self.node.record() | {"state": "down", "generation": self.node.generation + 1,
                                     "reason": f"SPDK does not answer: {error}"}  # fmt: skip
        lease = self.lease
        try:
            await self.store.put(keys.node(self.me), down)
            if lease is not None:
                await lease.revoke()
        except StoreError as e:  # the store is out of reach too: the lease runs out by itself
            log.warning("leaving the cluster: %s", e)
            if lease is not None:
                lease.abandon()

    async def _spdk_back(self) -> None:
        """SPDK answers again (restarted, as a rule): register as a new member."""
        log.warning("SPDK at %s answers again: registering", self.spdk_address)
        try:
            await self.register()
        except (SpdkError, StoreError) as e:
            log.warning("registering after SPDK came back: %s", e)
            return
        self.spdk_ok.set()
        self.kick.set()

    # ---- liveness ------------------------------------------------------------------------------
    async def _isolation_loop(self) -> None:
        """Hold every owned volume as soon as the lease has gone unrenewed for ``ISOLATE_AT`` of its
        TTL, on this node's own clock and without the store: the master may move the volumes once
        the TTL has run out. The holds go to SPDK at once, not after the pass under way; when the
        lease is renewed in time (nothing moved), the next pass releases them."""
        while True:
            await asyncio.sleep(0.05)
            lease = self.lease
            if lease is None or not self.spdk_ok.is_set():
                continue
            quiet = time.monotonic() - lease.renewed
            at_risk = quiet >= self.cfg.lease_ttl * ISOLATE_AT
            if at_risk and not self.isolated:
                log.warning("lease not renewed for %.1f s: holding every owned volume", quiet)
                self.isolated = True
                await self.hold_all()
            elif not at_risk and self.isolated and not lease.lost.is_set():
                log.warning("lease renewed: releasing the volumes held while it was at risk")
                self.isolated = False
                self.kick.set()

    async def hold_all(self) -> None:
        """Hold host I/O of every volume this node owns, now: the pass under way stops after its
        stage (and plans the holds again)."""
        self.urgent += 1
        try:
            self.instructions += 1
            steps = [self.hold_step(name, "isolate") for name in sorted(self.owned())]
            outcome = await execute(self.client, Plan(tuple(steps)), deadline=self.cfg.rpc_timeout)
            self.remember_holds(outcome.done, None)
            if outcome.failed:
                log.error("holding while isolated: %s", outcome.summary())
        except SpdkError as e:
            log.error("holding while isolated: %s", e)
        finally:
            self.urgent -= 1
            self.kick.set()

    async def _lease_loop(self) -> None:
        """When the lease is lost the node may have been declared dead and its volumes moved: hold
        every volume it owns (self-fencing) until it is registered again."""
        while True:
            lease = self.lease
            assert lease is not None
            await lease.lost.wait()
            if not self.spdk_ok.is_set():
                await self.spdk_ok.wait()  # registered again with a new lease by _spdk_back
                continue
            log.warning("lease lost: holding every owned volume until registered again")
            self.isolated = True
            self.kick.set()
            while True:
                try:
                    await self._go_live()
                    break
                except StoreError as e:
                    log.warning("registering again: %s", e)
                    await asyncio.sleep(0.5)
            self.kick.set()
