"""The store contract: the same tests against the embedded file store and a real 3-member etcd cluster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from spdkvirt.store import (
    Compacted,
    Compare,
    Conflict,
    Delete,
    EventKind,
    Get,
    GuardFailed,
    InvalidRecord,
    LeaseNotFound,
    Put,
    Resync,
    Store,
    WatchCursor,
    keys,
    open_store,
)
from spdkvirt.store.keys import KeyLayoutError
from tests.store import records

N1, N2, N3 = keys.node("n1"), keys.node("n2"), keys.node("n3")
NODES = keys.prefix("node")


async def collect(watch: Any, n: int, within: float = 10.0) -> list[Any]:
    out: list[Any] = []

    async def run() -> None:
        async for ev in watch:
            out.append(ev)
            if len(out) == n:
                return

    await asyncio.wait_for(run(), within)
    return out


async def test_put_get_range_delete_revisions(store: Store) -> None:
    start = await store.revision()
    r1 = await store.put(N1, records.node("n1"))
    assert r1 == start + 1
    r2 = await store.put(N2, records.node("n2"))
    r3 = await store.put(N1, records.node("n1", generation=1))
    kv = await store.get(N1)
    assert kv is not None
    assert (kv.create_revision, kv.mod_revision, kv.version) == (r1, r3, 2)
    assert kv.value["generation"] == 1
    assert await store.get(N3) is None

    await store.put(keys.device("n1", "d1"), records.device("n1", "d1"))
    listing = await store.range(NODES)
    assert [kv.key for kv in listing.kvs] == [N1, N2]
    assert listing.revision == await store.revision()

    assert await store.delete(N2) is True
    assert await store.delete(N2) is False
    assert await store.get(N2) is None
    r4 = await store.put(N2, records.node("n2"))
    kv2 = await store.get(N2)
    assert kv2 is not None and kv2.create_revision == r4 > r2 and kv2.version == 1


async def test_values_are_private_copies(store: Store) -> None:
    rec = records.node("n1")
    await store.put(N1, rec)
    rec["generation"] = 99
    kv = await store.get(N1)
    assert kv is not None and kv.value["generation"] == 0
    kv.value["generation"] = 42
    again = await store.get(N1)
    assert again is not None and again.value["generation"] == 0


async def test_cas_create_update_delete(store: Store) -> None:
    rev = await store.create(N1, records.node("n1"))
    with pytest.raises(Conflict) as e:
        await store.create(N1, records.node("n1"))
    assert e.value.current is not None and e.value.current.mod_revision == rev

    rev2 = await store.put(N1, records.node("n1", generation=1), expect=rev)
    with pytest.raises(Conflict) as e2:
        await store.put(N1, records.node("n1", generation=2), expect=rev)
    assert e2.value.expected == rev and e2.value.current is not None
    assert e2.value.current.mod_revision == rev2
    assert e2.value.current.value["generation"] == 1

    with pytest.raises(Conflict):
        await store.delete(N1, expect=rev)
    assert await store.delete(N1, expect=rev2)
    with pytest.raises(Conflict) as e3:
        await store.put(N1, records.node("n1"), expect=rev2)
    assert e3.value.current is None


async def test_cas_under_concurrent_writers(store: Store, store_url: str, backend_name: str) -> None:
    """Writers race to bump one counter with compare-and-swap: no update is lost."""
    await store.create(N1, records.node("n1"))
    handles = [store]
    if backend_name == "etcd":
        handles += [await open_store(store_url) for _ in range(2)]
    workers, each = 6, 15
    conflicts = 0

    async def bump(s: Store) -> None:
        nonlocal conflicts
        done = 0
        while done < each:
            kv = await s.get(N1)
            assert kv is not None
            try:
                await s.put(N1, records.node("n1", generation=kv.value["generation"] + 1), expect=kv.mod_revision)
                done += 1
            except Conflict:
                conflicts += 1
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(bump(handles[i % len(handles)]) for i in range(workers)))
    finally:
        for h in handles[1:]:
            await h.close()
    kv = await store.get(N1)
    assert kv is not None
    assert kv.value["generation"] == workers * each
    assert kv.version == workers * each + 1
    assert conflicts > 0


async def test_transactions_all_or_nothing(store: Store) -> None:
    base = await store.put(N1, records.node("n1"))
    # compares hold: every write lands at one revision
    r = await store.txn(
        [Compare.revision(N1, base), Compare.absent(N2)],
        [Put(N1, records.node("n1", generation=1)), Put(N2, records.node("n2")), Get(N1)],
        [Get(N1)],
    )
    assert r.succeeded
    assert r.results[2].kvs[0].value["generation"] == 1
    kv1, kv2 = await store.get(N1), await store.get(N2)
    assert kv1 is not None and kv2 is not None
    assert kv1.mod_revision == kv2.mod_revision == r.revision

    # one compare fails: nothing of success is written, failure branch runs
    r2 = await store.txn(
        [Compare.revision(N1, kv1.mod_revision), Compare.absent(N2)],
        [Put(N1, records.node("n1", generation=5)), Delete(N2)],
        [Get(N2), Put(N3, records.node("n3"))],
    )
    assert not r2.succeeded
    assert r2.results[0].kvs[0].key == N2
    kv1b = await store.get(N1)
    assert kv1b is not None and kv1b.value["generation"] == 1
    assert await store.get(N3) is not None

    # a read-only transaction does not move the revision
    rev = await store.revision()
    r3 = await store.txn([Compare.present(N1)], [Get(NODES, prefix=True)])
    assert r3.succeeded and r3.revision == rev and len(r3.results[0].kvs) == 3

    # value compares and prefix deletes
    r4 = await store.txn([Compare.value_is(N3, records.node("n3"))], [Delete(NODES, prefix=True)])
    assert r4.succeeded and r4.results[0].deleted == 3
    assert (await store.range(NODES)).kvs == ()


async def test_transaction_refusals_write_nothing(store: Store) -> None:
    rev = await store.revision()
    with pytest.raises(InvalidRecord) as e:
        await store.txn([], [Put(N1, records.node("n1")), Put(N2, records.node("n2", state="sideways"))])
    assert e.value.problems[0].key == N2 and e.value.problems[0].path == "$.state"
    with pytest.raises(ValueError, match="duplicate key"):
        await store.txn([], [Put(N1, records.node("n1")), Put(N1, records.node("n1"))])
    with pytest.raises(ValueError, match="duplicate key"):
        await store.txn([], [Delete(NODES, prefix=True), Put(N1, records.node("n1"))])
    with pytest.raises(LeaseNotFound):
        await store.txn([], [Put(N1, records.node("n1")), Put(N2, records.node("n2"), lease=12345)])
    assert await store.revision() == rev
    assert (await store.range(NODES)).kvs == ()


async def test_watch_history_live_and_filters(store: Store) -> None:
    start = await store.revision() + 1
    await store.put(N1, records.node("n1"))
    await store.put(keys.device("n1", "d1"), records.device("n1", "d1"))
    async with await store.watch(NODES, start_revision=start) as w, await store.watch(N2, prefix=False) as w2:
        await store.put(N2, records.node("n2"))
        await store.delete(N1)
        await store.txn([], [Put(N1, records.node("n1", generation=3)), Put(N3, records.node("n3"))])
        events = await collect(w, 5)
        only_n2 = await collect(w2, 1)
    assert [(e.kind, e.key) for e in events] == [
        (EventKind.PUT, N1),
        (EventKind.PUT, N2),
        (EventKind.DELETE, N1),
        (EventKind.PUT, N1),
        (EventKind.PUT, N3),
    ]
    revs = [e.revision for e in events]
    assert revs == sorted(revs) and revs[3] == revs[4]
    assert events[3].value["generation"] == 3 and events[3].version == 1
    assert [(e.kind, e.key) for e in only_n2] == [(EventKind.PUT, N2)]


async def test_watch_resumes_from_cursor_without_gaps_or_repeats(store: Store) -> None:
    start = await store.revision() + 1
    await store.txn([], [Put(N1, records.node("n1")), Put(N2, records.node("n2"))])
    await store.put(N3, records.node("n3"))
    w = await store.watch(NODES, start_revision=start)
    first = await collect(w, 1)
    await w.close()
    assert first[0].key == N1
    # stopped in the middle of a two-key revision: resume exactly after N1
    await store.put(N1, records.node("n1", generation=1))
    w2 = await store.watch(NODES, after=w.cursor)
    rest = await collect(w2, 3)
    await w2.close()
    assert [e.key for e in rest] == [N2, N3, N1]
    assert rest[-1].value["generation"] == 1


async def test_watch_resume_across_store_restart(store_url: str) -> None:
    s = await open_store(store_url)
    w = await s.watch(NODES)
    await s.put(N1, records.node("n1"))
    seen = await collect(w, 1)
    await s.close()
    with pytest.raises(Exception):  # noqa: B017 - the closed store ends its watches
        await collect(w, 1, within=5)

    # written while nobody watched
    s2 = await open_store(store_url)
    try:
        await s2.put(N2, records.node("n2"))
        await s2.put(N1, records.node("n1", generation=1))
        w2 = await s2.watch(NODES, after=w.cursor)
        got = await collect(w2, 2)
        await s2.put(N3, records.node("n3"))
        got += await collect(w2, 1)
        await w2.close()
    finally:
        await s2.close()
    assert [e.key for e in seen + got] == [N1, N2, N1, N3]


async def test_compacted_revision_is_a_clear_error(store: Store) -> None:
    r1 = await store.put(N1, records.node("n1"))
    await store.put(N1, records.node("n1", generation=1))
    r3 = await store.put(N2, records.node("n2"))
    await store.compact(r3)
    w = await store.watch(NODES, start_revision=r1)
    with pytest.raises(Compacted) as e:
        await collect(w, 1)
    assert e.value.compact_revision == r3
    assert "re-read" in str(e.value)
    # the cure: a full re-read, then a watch from just after it
    snap = await store.range(NODES)
    assert [kv.value["generation"] for kv in snap.kvs] == [1, 0]
    async with await store.watch(NODES, start_revision=snap.revision + 1) as w2:
        await store.put(N3, records.node("n3"))
        assert [e.key for e in await collect(w2, 1)] == [N3]
    # the compaction point itself can still be watched
    async with await store.watch(NODES, start_revision=r3) as w3:
        assert [e.key for e in await collect(w3, 1)] == [N2]


async def test_lease_expiry_keepalive_and_revoke(store: Store) -> None:
    kept = await store.grant_lease(1)
    dying = await store.grant_lease(1, keepalive=False)
    await store.put(N1, records.node("n1"), lease=kept)
    await store.put(N2, records.node("n2"), lease=dying)
    await store.put(N3, records.node("n3"))
    kv = await store.get(N1)
    assert kv is not None and kv.lease == kept.id
    async with await store.watch(N2, prefix=False) as w:
        t0 = time.monotonic()
        ev = (await collect(w, 1, within=5))[0]
        took = time.monotonic() - t0
    assert ev.kind is EventKind.DELETE and ev.key == N2
    assert took < 1 + 1.5
    assert await store.get(N2) is None
    with pytest.raises(LeaseNotFound):
        await store.backend.lease_keepalive(dying.id)
    assert await dying.time_to_live() is None

    await asyncio.sleep(2.2)  # twice the TTL: keepalive holds it
    assert await store.get(N1) is not None
    assert not kept.lost.is_set()
    ttl = await kept.time_to_live()
    assert ttl is not None and 0 <= ttl <= 1

    await kept.revoke()
    assert kept.lost.is_set()
    assert await store.get(N1) is None
    assert await store.get(N3) is not None
    with pytest.raises(LeaseNotFound):
        await kept.keepalive_once()


async def test_an_abandoned_lease_runs_out_by_itself(store: Store) -> None:
    # a process that dies revokes nothing: whatever its code would still do on the way out
    lease = await store.grant_lease(1)
    await store.put(N1, records.node("n1"), lease=lease)
    async with await store.watch(N1, prefix=False) as w:
        lease.abandon()
        await lease.revoke()
        assert await store.get(N1) is not None
        ev = (await collect(w, 1, within=5))[0]
    assert ev.kind is EventKind.DELETE


async def test_election_campaign_resign_observe(store: Store) -> None:
    election = store.election("master")
    seen: list[Any] = []

    async def observer() -> None:
        async for info in election.observe():
            seen.append(info)

    obs = asyncio.create_task(observer())
    la, lb = await store.grant_lease(2), await store.grant_lease(2)
    a = await election.campaign("a", la)
    b_task = asyncio.create_task(election.campaign("b", lb))
    await asyncio.sleep(0.3)
    assert not b_task.done()
    info = await election.leader()
    assert info is not None and info.holder == "a" and info.token == a.token
    assert await a.is_current()

    await a.resign()
    b = await asyncio.wait_for(b_task, 5)
    assert b.token > a.token
    assert not await a.is_current()
    with pytest.raises(GuardFailed):
        await store.put(N1, records.node("n1"), guards=[a.guard()])
    await store.put(N1, records.node("n1"), guards=[b.guard()])

    # the leader record carries who leads; its key names the lease
    kv = await store.get(b.key)
    assert kv is not None and kv.value["holder"] == "b" and kv.key == keys.leader("master", lb.id)

    # a candidate cancelled while waiting withdraws
    await a.lease.revoke()
    lc = await store.grant_lease(2)
    c_task = asyncio.create_task(election.campaign("c", lc))
    await asyncio.sleep(0.3)
    c_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await c_task
    assert [kv.key for kv in (await store.range(keys.candidates("master"))).kvs] == [b.key]

    await asyncio.sleep(0.2)
    obs.cancel()
    holders = [i.holder for i in seen if i is not None]
    assert holders[:2] == ["a", "b"]
    await lb.revoke()
    await lc.revoke()


async def test_election_failover_when_leader_dies(store: Store) -> None:
    """The leader stops renewing (as if killed): the next candidate leads within the TTL; the old
    leader's token is refused."""
    ttl = 1
    election = store.election("master")
    la, lb = await store.grant_lease(ttl), await store.grant_lease(ttl)
    a = await election.campaign("a", la)
    b_task = asyncio.create_task(election.campaign("b", lb))
    await asyncio.sleep(0.2)
    la.abandon()
    t0 = time.monotonic()
    b = await asyncio.wait_for(b_task, 10)
    took = time.monotonic() - t0
    assert took < ttl + 1.0
    assert b.token > a.token
    with pytest.raises(GuardFailed):
        await store.put(N1, records.node("n1"), guards=[a.guard()])
    await store.put(N1, records.node("n1"), guards=[b.guard()])
    await lb.revoke()


async def test_bad_records_are_refused_and_reported(store: Store) -> None:
    # on write: refused, with key and path, nothing stored
    with pytest.raises(InvalidRecord) as e:
        await store.put(N1, records.node("n1", generation=-1))
    assert (e.value.key, e.value.problems[0].path) == (N1, "$.generation")
    with pytest.raises(InvalidRecord, match="belongs under /spdkvirt/node/n2"):
        await store.put(N1, records.node("n2"))
    with pytest.raises(InvalidRecord, match="schema_version"):
        await store.put(N1, records.node("n1", schema_version=2))
    with pytest.raises(KeyLayoutError):
        await store.put("/spdkvirt/gizmo/x", records.node("x"))
    with pytest.raises(KeyLayoutError):
        await store.put("/elsewhere/node/n1", records.node("n1"))
    assert await store.get(N1) is None

    # on read: a bad record that got in (written around the checks) is reported, never used
    watch = await store.watch(NODES)
    await store.put(N2, records.node("n2"))
    await store.backend.txn([], [Put(N1, records.node("n1", state="melted"))], [])
    await store.backend.txn([], [Put(N3, "just a string")], [])
    with pytest.raises(InvalidRecord) as e1:
        await store.get(N1)
    assert (e1.value.key, e1.value.problems[0].path) == (N1, "$.state")
    with pytest.raises(InvalidRecord) as e2:
        await store.range(NODES)
    assert {p.key for p in e2.value.problems} == {N1, N3}
    with pytest.raises(InvalidRecord):
        await store.txn([], [Get(N3)])
    got = await collect(watch, 1)
    assert got[0].key == N2
    with pytest.raises(InvalidRecord) as e3:
        await collect(watch, 1)
    assert e3.value.key == N1
    await watch.close()
    raw = await store.get(N1, validate=False)
    assert raw is not None and raw.value["state"] == "melted"
    # a bad record can be replaced by a good one
    await store.put(N1, records.node("n1"))
    assert await store.get(N1) is not None


async def test_watch_from_a_future_revision_waits_for_it(store: Store) -> None:
    now = await store.revision()
    async with await store.watch(NODES, start_revision=now + 3) as w:
        for i in range(4):
            await store.put(N1, records.node("n1", generation=i))
        got = await collect(w, 2)
    assert [e.revision for e in got] == [now + 3, now + 4]


async def test_follow_resyncs_after_compaction(store: Store) -> None:
    await store.put(N1, records.node("n1"))
    items: list[Any] = []
    follower = store.follow(NODES)
    items.append(await anext(follower))
    await store.put(N2, records.node("n2"))
    items.append(await anext(follower))
    await follower.aclose()
    assert isinstance(items[0], Resync) and [kv.key for kv in items[0].kvs] == [N1]
    assert items[1].key == N2
    cursor = WatchCursor(items[1].revision, 1)

    # resuming from a cursor: only what changed since
    await store.put(N3, records.node("n3"))
    resumed = store.follow(NODES, after=cursor)
    nxt = await anext(resumed)
    assert not isinstance(nxt, Resync) and nxt.key == N3
    await resumed.aclose()

    # resuming from a cursor that was compacted away: a full re-read instead
    rev = await store.put(N1, records.node("n1", generation=1))
    await store.compact(rev)
    again = store.follow(NODES, after=cursor)
    first = await anext(again)
    await again.aclose()
    assert isinstance(first, Resync) and first.revision >= rev
    assert [kv.key for kv in first.kvs] == [N1, N2, N3]
