"""The master: campaign for leadership, then keep the mappings right, one epoch at a time.

While leading it mirrors nodes, liveness, devices, volumes, volume status, epochs and acks. After
any change it (1) finishes an open epoch if there is one — also one a previous leader left half
done, which it takes over under its own token; (2) promotes legs their owner reports rebuilt;
(3) marks nodes whose agent lease ran out as down; (4) runs :func:`spdkvirt.model.remap.remap`
over every volume and, if any mapping must change, opens an epoch for exactly those volumes.

An epoch goes quiescing -> remapping -> resuming -> done. Each phase waits for the
acknowledgements of the live nodes it names, up to a deadline; a node that misses it is declared
down (fenced: later instructions carry a newer token and the node must register again), which
the remap then treats like a failed node.

Before a mapping hands a down node's volumes to another owner, that node is fenced out of band
(:mod:`spdkvirt.controller.fencing`, over SSH, when its record says how) and the outcome is kept in
the epoch (``fencing``) and on the node (``fence_status``). A node that cannot be fenced keeps its
volumes — they wait rather than be served twice — and fencing is tried again with a growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from spdkvirt.controller import fencing
from spdkvirt.controller.writes import put_guarded
from spdkvirt.mirror import Mirror
from spdkvirt.model.placement import Capacity
from spdkvirt.model.records import Device, Epoch, Node, Volume, now
from spdkvirt.model.remap import ClusterView, Remap, promote, remap
from spdkvirt.store import Compare, Delete, Leadership, LeadershipLost, Put, Store, StoreError, keys

log = logging.getLogger(__name__)

#: findings of an owner that make the master rebuild a leg
SUSPECT = frozenset({"leg_dropped", "leg_lost", "identity_mismatch"})
KEEP_EPOCHS = 200
CRASH_ENV = "SPDKVIRT_CRASH_AT"
SUSPECT_GRACE = 0.3


def crash_point(name: str) -> None:
    """Die here, as a SIGKILL would, when ``SPDKVIRT_CRASH_AT`` names this point: lets tests stop a
    master at each step of an epoch. Points: ``<phase>:before_acks``, ``<phase>:after_acks``,
    ``remapping:half_written``."""
    if os.environ.get(CRASH_ENV) == name:
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class MasterConfig:
    holder: str
    election: str = "master"
    lease_ttl: int = 2
    quiesce_deadline: float = 2.0
    remap_deadline: float = 15.0
    resume_deadline: float = 5.0
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
        self.epochs_run = 0
        self.suspect_since: dict[str, dict[str, float]] = {}
        self.wake_at = 0.0  # when a pending suspect settles: look again then
        self.finished: set[int] = set()  # epochs this master ended: its mirror may not show it yet
        self.leading = asyncio.Event()
        self.unfenced: dict[str, tuple[float, float]] = {}  # node -> (retry at, pause): fencing failed

    # ---- leadership ------------------------------------------------------------------------
    async def run(self) -> None:
        """Campaign and lead, again and again, until cancelled."""
        while True:
            lease = await self.store.grant_lease(self.cfg.lease_ttl)
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
            await put_guarded(self.store, self.guard, writes)

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
        for n in cluster.nodes.values():
            if n.state != "up" or n.node_id in present:
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

    def remaps(self, names: Iterable[str] | None = None) -> list[Remap]:
        """The volumes whose mapping must change (all, or just ``names``)."""
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
            suspects = set()
            if st.get("node") == v.owner and st.get("generation") == v.generation:
                suspects = {f.get("leg", "") for f in st.get("findings", ()) if f.get("kind") in SUSPECT}
            r = remap(v, cluster, capacity, owned, self.settled(name, suspects))
            if r.changed and r.volume.owner != v.owner and self.blocked(v.owner):
                r = Remap(v)  # its owner could not be fenced: the volume waits rather than be served twice
            if r.changed and r.volume.owner != v.owner:
                owned[v.owner] -= 1
                owned[r.volume.owner] += 1
            out.append(r)
        return out

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

    async def drive(self, epoch: Epoch, record: dict[str, Any] | None = None) -> None:
        """Run an epoch from whatever phase it is in to done."""
        rec = dict(record) if record is not None else self._record(epoch)
        if rec["leader_token"] != self.token:
            log.info("epoch %d: taking over in phase %s", epoch.number, rec["phase"])
            rec["leader_token"] = self.token
            await self._write_epoch(rec)
        timings: dict[str, float] = dict(rec.get("timings", {}))
        ack_ms: dict[str, dict[str, float]] = {k: dict(v) for k, v in rec.get("ack_ms", {}).items()}
        fenced: set[str] = set(rec.get("fenced", ()))
        while rec["phase"] not in ("done", "aborted"):
            phase = rec["phase"]
            crash_point(f"{phase}:before_acks")
            started = time.monotonic()
            deadline = {"quiescing": self.cfg.quiesce_deadline, "remapping": self.cfg.remap_deadline}.get(
                phase, self.cfg.resume_deadline
            )
            acked, missing = await self.wait_acks(rec, phase, deadline, started, remap=phase == "remapping")
            for node, ms in acked.items():
                ack_ms.setdefault(node, {})[phase] = round(ms, 2)
                rec.setdefault("acks", {})[node] = phase
            if missing:
                log.warning("epoch %d: %s missed the %s deadline: fenced", rec["number"], sorted(missing), phase)
                fenced |= missing
                await self.fence(missing, rec["number"])
            crash_point(f"{phase}:after_acks")
            timings[phase] = round((time.monotonic() - started) * 1e3, 2)
            if phase == "quiescing":
                nodes = await self.apply_remap(rec)
                rec["affected_nodes"] = sorted(nodes)
                nxt = "remapping"
            elif phase == "remapping":
                nxt = "resuming"
            else:
                nxt = "done"
                rec["finished_at"] = now()
            if phase == "quiescing":
                timings["remap_write"] = round((time.monotonic() - started) * 1e3 - timings[phase], 2)
            rec.update(phase=nxt, timings=timings, ack_ms=ack_ms)
            if fenced:
                rec["fenced"] = sorted(fenced)
            await self._write_epoch(rec)
        self.epochs_run += 1
        self.finished.add(rec["number"])
        log.info("epoch %d done: %s", rec["number"], timings)
        await self.prune(rec["number"])

    async def wait_acks(
        self, rec: dict[str, Any], phase: str, deadline: float, started: float, *, remap: bool = False
    ) -> tuple[dict[str, float], set[str]]:
        """Wait until every live node of the epoch acknowledged ``phase`` under this leader's
        token; returns (node -> ms to its ack, nodes that missed the deadline).

        ``remap``: while waiting, keep the epoch's mappings right — a device or node that fails
        meanwhile changes them again (within the same epoch), and the nodes ack the newer ones."""
        assert self.mirror is not None
        number = rec["number"]
        waiting = set(rec["affected_nodes"])
        acked: dict[str, float] = {}
        end = started + deadline
        while True:
            if remap and any(r.changed for r in self.remaps(rec["affected_volumes"])):
                nodes = await self.apply_remap(rec)
                rec["affected_nodes"] = sorted(set(rec["affected_nodes"]) | nodes)
                await self._write_epoch(rec)
                waiting |= nodes
                for node in nodes:
                    acked.pop(node, None)
                await self._settle(lambda: not any(r.changed for r in self.remaps(rec["affected_volumes"])))
            cluster = self.cluster()
            for node in list(waiting):
                entry = self.mirror.get("ack", keys.ack(number, node))
                a = entry.value if entry is not None else None
                if a is not None and a.get("phase") == phase and a.get("leader_token") == self.token:
                    acked[node] = (time.monotonic() - started) * 1e3
                    waiting.discard(node)
                elif not cluster.node_ok(node):
                    waiting.discard(node)  # down: the remap leaves it out
            if not waiting:
                return acked, set()
            left = end - time.monotonic()
            if left <= 0:
                return acked, waiting
            self.mirror.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, self.cfg.tick)):
                    await self.mirror.changed.wait()

    async def fence(self, nodes: Iterable[str], number: int) -> None:
        cluster = self.cluster()
        writes = []
        for node in nodes:
            n = cluster.nodes.get(node)
            if n is not None and n.state == "up":
                rec = replace(n, state="down", generation=n.generation + 1).record()
                rec["reason"] = f"fenced: missed a deadline of epoch {number}"
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

    async def apply_remap(self, rec: dict[str, Any]) -> set[str]:
        """Fence the down owners whose volumes move, then write the new mappings of the epoch's
        volumes (all stamped with the epoch); returns the nodes that take part from now on."""
        remaps = self.remaps(rec["affected_volumes"])
        if await self.fence_moved_owners(rec, remaps):
            remaps = self.remaps(rec["affected_volumes"])  # now, and without moves off unfenced nodes
        number = rec["number"]
        cluster = self.cluster()
        old = self.volumes()
        writes = []
        nodes: set[str] = set()
        for r in remaps:
            v = r.volume
            nodes |= old[v.name].nodes() | v.nodes()
            writes.append(replace(v, epoch=number).record())
        writes += self.moved_exports(old, {r["name"]: r["owner_node"] for r in writes})
        half = len(writes) // 2
        if half:
            await put_guarded(self.store, self.guard, writes[:half])
        crash_point("remapping:half_written")
        if writes[half:]:
            await put_guarded(self.store, self.guard, writes[half:])
        rec["remapped_at"] = now()
        return {n for n in nodes if cluster.node_ok(n)}

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
