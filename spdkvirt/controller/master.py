"""The master: campaign for leadership, then keep the mappings right, one epoch at a time.

While leading it mirrors nodes, liveness, devices, volumes, volume status, epochs and acks. After
any change it (1) finishes an open epoch if there is one — also one a previous leader left half
done, which it takes over under its own token; (2) promotes legs their owner reports rebuilt;
(3) marks nodes whose agent lease ran out as down; (4) runs :func:`spdkvirt.model.remap.remap`
over every volume and, if any mapping must change, opens an epoch for exactly those volumes.

An epoch is run by the pure machine of :mod:`spdkvirt.model.epoch` (phases, per-volume answers,
deadlines, re-remaps, takeover); the master feeds it what its mirror shows and does what it asks:
write the epoch, write new mappings, declare down (*expel*) nodes that answered nothing in time.

Before a mapping hands a down node's volumes to another owner, that node is fenced out of band
(:mod:`spdkvirt.controller.fencing`, over SSH, when its record says how) and the outcome is kept in
the epoch (``fencing``) and on the node (``fence_status``). A node that cannot be fenced keeps its
volumes — they wait rather than be served twice — and fencing is tried again with a growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from spdkvirt.controller import fencing
from spdkvirt.controller.writes import Stale, put_guarded
from spdkvirt.mirror import Mirror
from spdkvirt.model import epoch as ep
from spdkvirt.model.placement import Capacity
from spdkvirt.model.records import Device, Epoch, Node, Volume, now
from spdkvirt.model.remap import ClusterView, Remap, promote, remap
from spdkvirt.store import Compare, Delete, Leadership, LeadershipLost, Lease, Put, Store, StoreError, keys

log = logging.getLogger(__name__)

#: findings of an owner that make the master rebuild a leg
SUSPECT = frozenset({"leg_dropped", "leg_lost", "identity_mismatch"})
KEEP_EPOCHS = 200
SUSPECT_GRACE = 0.3


@dataclass(frozen=True)
class MasterConfig:
    holder: str
    election: str = "master"
    lease_ttl: int = 2
    deadlines: ep.Deadlines = field(default_factory=ep.Deadlines)
    down_margin: float = 0.3  # seconds a node's liveness must stay gone before it is marked down
    tick: float = 0.5
    fence_timeout: float = 10.0
    fence_retry: float = 2.0
    fence_retry_max: float = 60.0
    require_fencing: bool = False  # a node with no fence configured keeps its volumes too


def parsers() -> dict[str, Any]:
    return {
        "node": Node.of,
        "alive": dict,
        "device": Device.of,
        "volume": Volume.of,
        "status": dict,
        "epoch": Epoch.of,
        "ack": dict,
        "export": dict,
    }


class Master:
    def __init__(self, store: Store, cfg: MasterConfig) -> None:
        self.store = store
        self.cfg = cfg
        self.mirror: Mirror | None = None
        self.leadership: Leadership | None = None
        self.lease: Lease | None = None  # the lease of the current campaign
        self.epochs_run = 0
        self.suspect_since: dict[str, dict[str, float]] = {}
        self.wake_at = 0.0  # when a pending suspect settles: look again then
        self.finished: set[int] = set()  # epochs this master ended: its mirror may not show it yet
        self.leading = asyncio.Event()
        self.absent_since: dict[str, float] = {}  # node -> when its liveness record was first seen gone
        self.unfenced: dict[str, tuple[float, float]] = {}  # node -> (retry at, pause): fencing failed

    # ---- leadership ------------------------------------------------------------------------
    async def run(self) -> None:
        """Campaign and lead, again and again, until cancelled."""
        while True:
            self.lease = lease = await self.store.grant_lease(self.cfg.lease_ttl)
            try:
                leadership = await self.store.election(self.cfg.election).campaign(self.cfg.holder, lease)
                log.info("%s leads (token %d)", self.cfg.holder, leadership.token)
                await self.lead(leadership)
            except (LeadershipLost, StoreError) as e:
                log.warning("%s: leadership ended: %s", self.cfg.holder, e)
                await asyncio.sleep(0.2)
            finally:
                self.leading.clear()
                with contextlib.suppress(Exception):
                    await lease.revoke()

    async def lead(self, leadership: Leadership) -> None:
        self.leadership = leadership
        self.mirror = mirror = Mirror(self.store, parsers())
        mirror.start()
        try:
            await mirror.synced.wait()
            self.leading.set()
            while not leadership.lost.is_set():
                mirror.changed.clear()
                try:
                    await self.step()
                except (LeadershipLost, StoreError):
                    raise
                except Exception:
                    log.exception("master step failed")
                    await asyncio.sleep(1.0)
                wait = self.cfg.tick
                if self.wake_at:
                    wait = max(0.0, min(wait, self.wake_at - time.monotonic()))
                    self.wake_at = 0.0
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await mirror.changed.wait()
            raise LeadershipLost("lease lost")
        finally:
            await mirror.close()
            self.mirror = None

    @property
    def guard(self) -> Compare:
        assert self.leadership is not None
        return self.leadership.guard()

    @property
    def token(self) -> int:
        assert self.leadership is not None
        return self.leadership.token

    # ---- the view --------------------------------------------------------------------------
    def values(self, kind: str) -> list[Any]:
        assert self.mirror is not None
        return self.mirror.values(kind)

    def cluster(self) -> ClusterView:
        nodes = {n.node_id: n for n in self.values("node")}
        alive = frozenset(a["node"] for a in self.values("alive") if a["node"] in nodes)
        devices = {d.key: d for d in self.values("device")}
        return ClusterView(nodes, alive, devices)

    def volumes(self) -> dict[str, Volume]:
        return {v.name: v for v in self.values("volume")}

    def statuses(self) -> dict[str, dict[str, Any]]:
        return {s["volume"]: s for s in self.values("status")}

    # ---- one round -------------------------------------------------------------------------
    async def step(self) -> None:
        open_epochs = sorted((e for e in self.values("epoch") if e.phase not in ("done", "aborted")),
                             key=lambda e: e.number)  # fmt: skip
        if open_epochs:
            if open_epochs[0].number not in self.finished:  # else: ended here, the mirror shows it soon
                await self.drive(open_epochs[0])
            return
        await self.promote_rebuilt()
        await self.mark_down()
        await self.open_epoch()

    async def promote_rebuilt(self) -> None:
        statuses = self.statuses()
        writes = []
        for v in self.volumes().values():
            st = statuses.get(v.name)
            if st is None or st.get("node") != v.owner:
                continue
            nxt = promote(v, st.get("in_sync", ()), st.get("generation", 0))
            if nxt is not v:
                writes.append(nxt.record())
        if writes:
            with contextlib.suppress(Stale):  # changed meanwhile: decided again on the next round
                await put_guarded(self.store, self.guard, writes, self.revisions("volume", writes))

    async def mark_down(self) -> None:
        """Mark down the nodes whose liveness record is gone. The mirror follows each kind on its
        own, so it may show a node registering (its node record) before its new liveness record:
        each write is conditional on the store having no liveness record for the node and on the
        node record being the one seen, so only an expired lease marks a node down."""
        assert self.mirror is not None
        cluster = self.cluster()
        for node in [n for n in self.unfenced if cluster.node_ok(n)]:
            del self.unfenced[node]  # back up: a later failure starts fencing afresh
        present = {a["node"] for a in self.values("alive")}
        clock = time.monotonic()
        for node in [n for n in self.absent_since if n in present]:
            del self.absent_since[node]
        for n in cluster.nodes.values():
            if n.state != "up" or n.node_id in present:
                continue
            gone = self.absent_since.setdefault(n.node_id, clock)
            if clock - gone < self.cfg.down_margin:
                # its agent holds its volumes by ISOLATE_AT of the TTL on its own clock; the margin
                # covers clocks that run apart and holds still on their way to SPDK
                due = gone + self.cfg.down_margin
                self.wake_at = min(self.wake_at, due) if self.wake_at else due
                continue
            entry = self.mirror.get("node", keys.node(n.node_id))
            if entry is None:
                continue
            down = replace(n, state="down", generation=n.generation + 1).record()
            down["reason"] = "agent lease expired"
            node_key, alive_key = keys.node(n.node_id), keys.alive(n.node_id)
            checks = [self.guard, Compare.absent(alive_key), Compare.revision(node_key, entry.mod_revision)]
            r = await self.store.txn(checks, [Put(node_key, down)])
            if r.succeeded:
                log.warning("node %s down: agent lease expired", n.node_id)
            elif self.leadership is not None and self.leadership.lost.is_set():
                raise LeadershipLost("leadership lost while marking nodes down")

    def revisions(self, kind: str, records: Iterable[dict[str, Any]]) -> dict[str, int]:
        """The revision (0: absent) at which the mirror read each record's key: writes of what was
        decided from them are conditional on it."""
        assert self.mirror is not None
        out = {}
        for r in records:
            key = keys.for_record(r)
            entry = self.mirror.get(kind, key)
            out[key] = entry.mod_revision if entry is not None else 0
        return out

    def remaps(self, names: Iterable[str] | None = None, *, moves: bool = False) -> list[Remap]:
        """The volumes whose mapping must change (all, or just ``names``). An owner moves off a
        down node only once the node is out of the way: its liveness gone (lease expired, or
        revoked by its agent) or fenced out of band; a node declared down while its agent still
        holds its lease may still be serving. ``moves``: every move wanted, for fencing."""
        cluster = self.cluster()
        volumes = self.volumes()
        capacity = Capacity.of(cluster.devices.values(), volumes.values(), cluster.usable_nodes())
        owned = Counter(v.owner for v in volumes.values())
        statuses = self.statuses()
        out = []
        assert self.mirror is not None  # volumes() above read it
        unreadable = self.mirror.unparsed["volume"]
        for name in sorted(volumes if names is None else names):
            v = volumes.get(name)
            if v is None or keys.volume(name) in unreadable:
                continue  # a record this version cannot read is never written over
            st = statuses.get(name) or {}
            dropped: set[str] = set()
            if st.get("node") == v.owner and st.get("generation", 0) <= v.generation:
                # the owner's last word, even about an earlier mapping: a leg it saw drop out of its
                # raid missed writes, whatever has happened to the owner since
                dropped = {f.get("leg", "") for f in st.get("findings", ()) if f.get("kind") in SUSPECT}
            suspects = dropped if st.get("generation") == v.generation else set()
            r = remap(v, cluster, capacity, owned, self.settled(name, suspects), dropped)
            if r.changed and r.volume.owner != v.owner and not moves and not self.out_of_the_way(v.owner, cluster):
                r = Remap(v)  # its owner may still serve it: the volume waits rather than be served twice
            if r.changed and r.volume.owner != v.owner:
                owned[v.owner] -= 1
                owned[r.volume.owner] += 1
            out.append(r)
        return out

    def out_of_the_way(self, node: str, cluster: ClusterView) -> bool:
        """Can a volume owned by ``node`` get another owner: it is fenced for its current
        registration, or its liveness is gone (and fencing did not fail just now)?"""
        if cluster.node_ok(node):
            return True  # a move off a live node is a rebalance: the epoch holds it on both
        n = cluster.nodes.get(node)
        done = dict(n.extra).get("fence_status") or {} if n is not None else {}
        if n is not None and done.get("ok") and done.get("generation") == n.generation:
            return True
        return node not in cluster.alive and not self.blocked(node)

    def blocked(self, node: str) -> bool:
        """Is ``node`` unfenced after a failed attempt, with the next attempt not due yet?"""
        retry = self.unfenced.get(node)
        if retry is None:
            return False
        if time.monotonic() >= retry[0]:
            return False
        self.wake_at = min(self.wake_at, retry[0]) if self.wake_at else retry[0]
        return True

    def settled(self, volume: str, suspects: set[str]) -> set[str]:
        """The suspects reported for at least SUSPECT_GRACE seconds. An owner often reports a leg
        dropped before the leg's own node reports its device failed; waiting that long lets one
        epoch move the leg off the device instead of rebuilding it there first."""
        now_ = time.monotonic()
        seen = self.suspect_since
        for leg in list(seen.get(volume, {})):
            if leg not in suspects:
                del seen[volume][leg]
        first = seen.setdefault(volume, {})
        for leg in suspects:
            first.setdefault(leg, now_)
        pending = [t + SUSPECT_GRACE for t in first.values() if now_ - t < SUSPECT_GRACE]
        if pending:
            self.wake_at = min([self.wake_at, *pending]) if self.wake_at else min(pending)
        return {leg for leg, t in first.items() if now_ - t >= SUSPECT_GRACE}

    # ---- epochs ------------------------------------------------------------------------------
    def next_epoch_number(self) -> int:
        return max((e.number for e in self.values("epoch")), default=0) + 1

    async def open_epoch(self) -> None:
        changed = [r for r in self.remaps() if r.changed]
        if not changed:
            return
        cluster = self.cluster()
        old = self.volumes()
        nodes: set[str] = set()
        for r in changed:
            nodes |= old[r.volume.name].nodes() | r.volume.nodes()
        nodes = {n for n in nodes if cluster.node_ok(n)}
        reason = Counter(r.reason for r in changed).most_common(1)[0][0]
        detail = "; ".join(f"{r.volume.name}: {r.detail}" for r in changed[:20])
        epoch = Epoch(self.next_epoch_number(), reason, frozenset(r.volume.name for r in changed),
                      frozenset(nodes), self.token, "quiescing", {}, detail[:4000])  # fmt: skip
        record = epoch.record() | {"started_at": now(), "updated_at": now()}
        key = keys.epoch(epoch.number)
        opened = await self.store.txn([self.guard, Compare.absent(key)], [Put(key, record)])
        if not opened.succeeded:
            raise LeadershipLost("could not open an epoch")
        log.info("epoch %d (%s): %d volume(s) on %s", epoch.number, reason, len(epoch.volumes), sorted(nodes))
        await self.drive(epoch, record)

    def _record(self, epoch: Epoch) -> dict[str, Any]:
        assert self.mirror is not None
        entry = self.mirror.get("epoch", keys.epoch(epoch.number))
        return dict(entry.record) if entry is not None else epoch.record()

    async def _write_epoch(self, record: dict[str, Any]) -> None:
        record["updated_at"] = now()
        await put_guarded(self.store, self.guard, [record])

    def _machine(self, rec: dict[str, Any], clock: float) -> ep.State:
        """The machine's state for an epoch record (one this leader opens, or one it takes over)."""
        volumes = frozenset(rec["affected_volumes"])
        owners = {n: v.owner for n, v in self.volumes().items() if n in volumes}
        state = ep.begin(rec["number"], rec["leader_token"], volumes, owners, frozenset(rec["affected_nodes"]), clock)
        expelled = frozenset(rec.get("expelled", ()))
        return replace(state, phase=rec["phase"], expelled=expelled, down=expelled, failed=dict(rec.get("failed", {})),
                       remaps=int(rec.get("remaps", 0)))  # fmt: skip

    def _events(self, state: ep.State, clock: float) -> list[ep.Event]:
        """What the mirror shows that the machine has not heard: nodes down, volumes gone, answers,
        mappings that must change again."""
        assert self.mirror is not None
        cluster = self.cluster()
        volumes = self.volumes()
        events: list[ep.Event] = []
        down = frozenset(n for n in state.work if not cluster.node_ok(n)) - state.down
        if down:
            events.append(ep.Down(down, clock))
        gone = frozenset(v for v in state.volumes if v not in volumes)
        if gone:
            events.append(ep.Gone(gone, clock))
        for node in state.waiting():
            entry = self.mirror.get("ack", keys.ack(state.number, node))
            a = entry.value if entry is not None else {}
            if a.get("phase") == state.phase and a.get("leader_token") == state.token:
                answer = ep.Answer.of(a)
                if state.answered.get(node) != answer:
                    events.append(ep.Answered(answer, clock))
        if state.phase == "remapping" and any(r.changed for r in self.remaps(state.volumes - gone)):
            events.append(ep.Stale(clock))
        return events

    def _epoch_record(self, rec: dict[str, Any], state: ep.State) -> dict[str, Any]:
        nodes = sorted(set(rec["affected_nodes"]) | set(state.work))
        out = dict(rec, phase=state.phase, leader_token=state.token, affected_volumes=sorted(state.volumes),
                   affected_nodes=nodes, remaps=state.remaps)  # fmt: skip
        out["acks"] = dict(rec.get("acks", {})) | {n: a.phase for n, a in state.answered.items()}
        if state.expelled:
            out["expelled"] = sorted(state.expelled)
        if state.failed:
            out["failed"] = {v: why[:1000] for v, why in sorted(state.failed.items())[:1000]}
        return out

    async def drive(self, epoch: Epoch, record: dict[str, Any] | None = None) -> None:
        """Run an epoch from whatever phase it is in to done: feed the machine
        (:mod:`spdkvirt.model.epoch`) what the mirror shows and do what it asks."""
        assert self.mirror is not None
        rec = dict(record) if record is not None else self._record(epoch)
        d = self.cfg.deadlines
        state = self._machine(rec, time.monotonic())
        actions: list[ep.Action] = []
        timings: dict[str, float] = dict(rec.get("timings", {}))
        ack_ms: dict[str, dict[str, float]] = {k: dict(v) for k, v in rec.get("ack_ms", {}).items()}

        def moved(before: ep.State) -> None:
            if state.phase != before.phase:
                timings[before.phase] = round((time.monotonic() - before.started) * 1e3, 2)

        if rec["leader_token"] != self.token:
            log.info("epoch %d: taking over in phase %s", epoch.number, rec["phase"])
            state, actions = ep.take_over(state, self.token, time.monotonic())
        while state.phase != "done" or actions:
            while actions:
                action, actions = actions[0], actions[1:]
                before = state
                state, more = await self._do(action, state, rec, timings)
                moved(before)
                actions = more + actions
                if isinstance(action, ep.Write):
                    rec = self._epoch_record(rec, state) | {"timings": timings, "ack_ms": ack_ms}
                    if state.phase == "done":
                        rec["finished_at"] = now()
                    await self._write_epoch(rec)
            if state.phase == "done":
                break
            clock = time.monotonic()
            events: list[ep.Event] = self._events(state, clock)
            if events:
                heard = state
                for event in events:
                    before = state
                    state, more = ep.step(state, event, d)
                    actions += more
                    if isinstance(event, ep.Answered) and state is not before:  # heard, not ignored
                        ms = round((clock - before.started) * 1e3, 2)
                        ack_ms.setdefault(event.answer.node, {})[before.phase] = ms
                    moved(before)
                if actions or state != heard:
                    continue
            due = state.next_deadline(d)
            wait = self.cfg.tick if due is None else max(0.0, min(self.cfg.tick, due - clock))
            self.mirror.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.mirror.changed.wait()
            before = state
            state, more = ep.step(state, ep.Tick(time.monotonic()), d)
            actions += more
            moved(before)
        self.epochs_run += 1
        self.finished.add(rec["number"])
        log.info("epoch %d done: %s%s", rec["number"], timings,
                 f"; failed: {dict(state.failed)}" if state.failed else "")  # fmt: skip

    async def _do(
        self, action: ep.Action, state: ep.State, rec: dict[str, Any], timings: dict[str, float]
    ) -> tuple[ep.State, list[ep.Action]]:
        """Carry out one action of the machine; returns the state and actions an answer leads to
        (``timings`` gets how long writing the mappings took)."""
        if isinstance(action, ep.Remap):
            started = time.monotonic()
            for attempt in range(20):
                try:
                    generations, members = await self.apply_remap(rec, action.volumes)
                    break
                except Stale as e:  # resized or deleted meanwhile: decide again on what is there now
                    log.info("epoch %d: %s; remapping again", state.number, e)
                    await asyncio.sleep(0.05 * (attempt + 1))  # for the mirror to show what changed
            else:
                raise Stale(f"epoch {state.number}: the mappings kept changing while being written")
            rec["remapped_at"] = now()
            timings["remap_write"] = round((time.monotonic() - started) * 1e3, 2)
            return ep.step(state, ep.Remapped(generations, members, time.monotonic()), self.cfg.deadlines)
        if isinstance(action, ep.Expel):
            log.warning("epoch %d: %s missed the %s deadline: expelled", state.number, sorted(action.nodes),
                        action.phase)  # fmt: skip
            await self.expel(action.nodes, state.number)
        elif isinstance(action, ep.Finished):
            await self.prune(state.number)
        return state, []

    async def expel(self, nodes: Iterable[str], number: int) -> None:
        """Declare ``nodes`` down: they missed a deadline of epoch ``number`` (they must register again)."""
        cluster = self.cluster()
        writes = []
        for node in nodes:
            n = cluster.nodes.get(node)
            if n is not None and n.state == "up":
                rec = replace(n, state="down", generation=n.generation + 1).record()
                rec["reason"] = f"expelled: missed a deadline of epoch {number}"
                writes.append(rec)
        if writes:
            await put_guarded(self.store, self.guard, writes)
            await self._settle(lambda: all(self.cluster().nodes[w["node_id"]].state == "down" for w in writes))

    async def _settle(self, done: Any, within: float = 2.0) -> None:
        """Wait until the mirror shows our own writes (it is fed by a watch)."""
        assert self.mirror is not None
        end = time.monotonic() + within
        while not done() and time.monotonic() < end:
            self.mirror.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self.mirror.changed.wait()

    async def fence_moved_owners(self, rec: dict[str, Any], remaps: Iterable[Remap]) -> bool:
        """Fence, out of band, every down node whose volumes ``remaps`` give another owner; records
        the outcomes in the epoch and on the nodes. Nodes fenced already (for their current
        generation) are not fenced again. True when it tried any (which takes time: look again)."""
        assert self.mirror is not None
        cluster = self.cluster()
        old = self.volumes()
        need = {old[r.volume.name].owner for r in remaps if r.changed and r.volume.owner != old[r.volume.name].owner}
        todo = []
        for node in sorted(n for n in need if n in cluster.nodes and not cluster.node_ok(n)):
            n = cluster.nodes[node]
            done = dict(n.extra).get("fence_status") or {}
            if done.get("ok") and done.get("generation") == n.generation:
                continue
            if n.fence is None and not self.cfg.require_fencing:
                log.warning("epoch %d: %s has no out-of-band fence configured: its volumes move on its lease "
                            "alone", rec["number"], node)  # fmt: skip
                rec.setdefault("fencing", {})[node] = {"method": "none", "ok": False, "at": now(), "ms": 0.0,
                                                       "detail": "no out-of-band fence configured"}  # fmt: skip
                continue
            todo.append(n)
        outcomes = await asyncio.gather(*(fencing.fence(n, within=self.cfg.fence_timeout) for n in todo))
        for n, out in zip(todo, outcomes, strict=True):
            rec.setdefault("fencing", {})[n.node_id] = out.record()
            if out.ok:
                self.unfenced.pop(n.node_id, None)
            else:
                pause = min(self.unfenced.get(n.node_id, (0.0, self.cfg.fence_retry / 2))[1] * 2,
                            self.cfg.fence_retry_max)  # fmt: skip
                self.unfenced[n.node_id] = (time.monotonic() + pause, pause)
                log.error("epoch %d: %s cannot be fenced (%s): its volumes stay with it; next try in %.0f s",
                          rec["number"], n.node_id, out.detail, pause)  # fmt: skip
            status = {"ok": out.ok, "at": out.at, "method": out.method, "detail": out.detail[:1000],
                      "epoch": rec["number"], "generation": n.generation}  # fmt: skip
            entry = self.mirror.get("node", keys.node(n.node_id))
            if entry is not None and entry.value.generation == n.generation:  # else it registered again
                key = keys.node(n.node_id)
                await self.store.txn([self.guard, Compare.revision(key, entry.mod_revision)],
                                     [Put(key, entry.value.record() | {"fence_status": status})])  # fmt: skip
        return bool(todo)

    async def apply_remap(
        self, rec: dict[str, Any], volumes: Iterable[str]
    ) -> tuple[dict[str, int], dict[str, frozenset[str]]]:
        """Fence the down owners whose volumes move, then write the new mappings of ``volumes`` (all
        stamped with the epoch); returns each volume's mapping generation now and the live nodes of
        its new mapping (those answer for it; nodes it leaves answer for nothing)."""
        names = sorted(volumes)
        if await self.fence_moved_owners(rec, self.remaps(names, moves=True)):
            await asyncio.sleep(0.05)  # for the mirror to show the fence outcomes on the nodes
        remaps = self.remaps(names)  # without moves off nodes still in the way
        number = rec["number"]
        cluster = self.cluster()
        old = self.volumes()
        writes = []
        generations: dict[str, int] = {}
        members: dict[str, frozenset[str]] = {}
        for r in remaps:
            v = r.volume
            generations[v.name] = v.generation
            members[v.name] = frozenset(n for n in v.nodes() if cluster.node_ok(n))
            if r.changed or v.epoch != number:
                writes.append(replace(v, epoch=number).record())
        exports = self.moved_exports(old, {r["name"]: r["owner_node"] for r in writes})
        revisions = self.revisions("volume", writes) | self.revisions("export", exports)
        writes += exports
        if writes:
            await put_guarded(self.store, self.guard, writes, revisions)
        written = {w["name"]: w["generation"] for w in writes if w.get("kind") == "volume"}
        await self._settle(lambda: all(
            (v := self.volumes().get(n)) is None or v.generation >= g for n, g in written.items()
        ))  # fmt: skip
        return generations, members

    def moved_exports(self, old: Mapping[str, Volume], owners: Mapping[str, str]) -> list[dict[str, Any]]:
        """Export records of volumes whose owner changes, rewritten to name the new owner and its
        listener (the planner serves exports on whatever node owns the volume)."""
        cluster = self.cluster()
        out = []
        for e in self.values("export"):
            owner = owners.get(e["volume"])
            node = cluster.nodes.get(owner or "")
            if node is None or owner == old[e["volume"]].owner or e.get("node") == owner:
                continue
            rec = dict(e, node=owner, generation=e.get("generation", 0) + 1)
            if "nvmf" in rec:
                listener = {"trtype": "TCP", "adrfam": "IPv6" if ":" in node.address else "IPv4",
                            "traddr": node.address, "trsvcid": str(node.nvmf_port)}  # fmt: skip
                rec["nvmf"] = dict(rec["nvmf"], listeners=[listener])
            if "iscsi" in rec:
                rec["iscsi"] = dict(rec["iscsi"], portals=[{"host": node.address, "port": node.iscsi_port}])
            out.append(rec)
        return out

    async def prune(self, number: int) -> None:
        """Drop the acks of a finished epoch and epochs older than the last KEEP_EPOCHS."""
        ops: list[Any] = [Delete(keys.acks(number), prefix=True)]
        old = sorted(e.number for e in self.values("epoch"))[:-KEEP_EPOCHS]
        ops += [Delete(keys.epoch(n)) for n in old[:100]]
        await self.store.txn([self.guard], ops)
