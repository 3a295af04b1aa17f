"""What is particular to the etcd store: losing members, leaders and processes; TLS and passwords."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aetcd import rpc

from spdkvirt.store import (
    Compare,
    Conflict,
    EventKind,
    GuardFailed,
    InvalidRecord,
    OutcomeUnknown,
    Store,
    StoreError,
    StoreUnavailable,
    keys,
    open_store,
)
from spdkvirt.store.localetcd import LocalEtcd, TlsFiles
from tests.etcd_cluster import etcd_url, namespace_for, start_cluster
from tests.store import records

pytestmark = pytest.mark.etcd

ROOT = Path(__file__).resolve().parents[2]
NODES = keys.prefix("node")


async def bump(store: Store, key: str) -> tuple[int, int] | None:
    """One compare-and-swap increment; (generation, revision) when acknowledged, None when not."""
    try:
        kv = await store.get(key)
        gen = kv.value["generation"] + 1 if kv else 1
        rev = await store.put(
            key, records.node(keys.parse(key).parts[0], generation=gen), expect=kv.mod_revision if kv else 0
        )
    except (Conflict, OutcomeUnknown, StoreUnavailable):
        return None
    return gen, rev


async def all_events(store: Store, start: int, upto: int) -> list[Any]:
    out = []
    async with await store.watch(NODES, start_revision=start) as w:
        async for ev in w:
            out.append(ev)
            if ev.revision >= upto:
                break
    return out


async def test_writes_resume_when_a_member_is_killed(etcd3: LocalEtcd) -> None:
    store = await open_store(etcd_url(etcd3))
    try:
        key = keys.node("n1")
        for _ in range(5):
            assert await bump(store, key)
        # the client talks to the first endpoint: kill that member (SIGKILL)
        etcd3.kill(0)
        t0 = time.monotonic()
        while await bump(store, key) is None:
            assert time.monotonic() - t0 < 10
        resumed = time.monotonic() - t0
        assert resumed < 6
        for _ in range(5):
            while await bump(store, key) is None:
                pass
        etcd3.restart(0)
        etcd3.kill(1)
        for _ in range(5):
            while await bump(store, key) is None:
                pass
        kv = await store.get(key)
        assert kv is not None and kv.value["generation"] >= 16
    finally:
        await store.close()


async def test_killing_the_leader_during_cas_writes_loses_no_acknowledged_write(etcd3: LocalEtcd) -> None:
    store = await open_store(etcd_url(etcd3))
    start = await store.revision() + 1
    counters = [keys.node(f"c{i}") for i in range(4)]
    acked: list[tuple[str, int, int]] = []
    stop = asyncio.Event()
    unknown = 0

    async def writer(key: str) -> None:
        nonlocal unknown
        while not stop.is_set():
            got = await bump(store, key)
            if got is None:
                unknown += 1
                await asyncio.sleep(0.01)
            else:
                acked.append((key, *got))

    seen: list[Any] = []

    async def watcher() -> None:
        async with await store.watch(NODES, start_revision=start) as w:
            async for ev in w:
                seen.append(ev)

    watch_task = asyncio.create_task(watcher())
    tasks = [asyncio.create_task(writer(k)) for k in counters]
    try:
        while len(acked) < 60:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        leader = etcd3.leader_index()
        etcd3.kill(leader)
        before = len(acked)
        t0 = time.monotonic()
        while len(acked) < before + 120:
            assert time.monotonic() - t0 < 30, "writes did not resume after the leader was killed"
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    last = await store.revision()
    history = await all_events(store, start, last)
    t1 = time.monotonic()
    while not seen or seen[-1].revision < last:
        assert time.monotonic() - t1 < 10
        await asyncio.sleep(0.02)
    watch_task.cancel()
    await store.close()

    written = {(e.key, e.revision): e.value["generation"] for e in history}
    for key, gen, rev in acked:
        assert written.get((key, rev)) == gen, f"acknowledged write {key}@{rev} (gen {gen}) was lost"
    for key in counters:
        gens = [e.value["generation"] for e in history if e.key == key]
        assert gens == list(range(1, len(gens) + 1)), f"{key}: generations skip or repeat"
    # the watch that lived through the failover saw every change exactly once
    assert [(e.key, e.revision) for e in seen] == [(e.key, e.revision) for e in history]


async def test_watch_resumes_across_a_cluster_restart(etcd3: LocalEtcd) -> None:
    store = await open_store(etcd_url(etcd3))
    try:
        start = await store.revision() + 1
        seen: list[Any] = []

        async def watcher() -> None:
            async with await store.watch(NODES, start_revision=start) as w:
                async for ev in w:
                    seen.append(ev)

        task = asyncio.create_task(watcher())
        for i in range(5):
            await store.put(keys.node(f"a{i}"), records.node(f"a{i}"))
        for i in range(3):
            etcd3.kill(i)
        await asyncio.sleep(0.5)
        for i in range(3):
            etcd3.restart(i, wait=False)
        etcd3.wait_ready()
        for i in range(5):
            while True:
                try:
                    await store.put(keys.node(f"b{i}"), records.node(f"b{i}"))
                    break
                except (OutcomeUnknown, StoreUnavailable):
                    await asyncio.sleep(0.1)
        t0 = time.monotonic()
        while len(seen) < 10:
            assert time.monotonic() - t0 < 20, [e.key for e in seen]
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        task.cancel()
        assert [e.key for e in seen] == [keys.node(f"a{i}") for i in range(5)] + [keys.node(f"b{i}") for i in range(5)]
        assert all(e.kind is EventKind.PUT for e in seen)
    finally:
        await store.close()


async def test_leader_failover_when_the_leader_process_is_killed(
    etcd3_shared: LocalEtcd, request: pytest.FixtureRequest
) -> None:
    url = etcd_url(etcd3_shared, namespace_for(request))
    ttl = 2
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("campaigner.py")),
        url,
        "master",
        "proc-a",
        str(ttl),
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    store = await open_store(url)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        assert line[0] == "LEADER"
        old_token, old_key = int(line[1]), line[2]
        election = store.election("master")
        info = await election.leader()
        assert info is not None and info.holder == "proc-a" and info.token == old_token

        lease = await store.grant_lease(ttl)
        mine = asyncio.create_task(election.campaign("me", lease))
        await asyncio.sleep(0.5)
        assert not mine.done()
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        t0 = time.monotonic()
        leadership = await asyncio.wait_for(mine, 3 * ttl)
        took = time.monotonic() - t0
        assert took < ttl + 1.0, f"new leader after {took:.2f}s"
        assert leadership.token > old_token
        # the dead leader's token is refused by the store itself
        with pytest.raises(GuardFailed):
            await store.put(keys.node("n1"), records.node("n1"), guards=[Compare.created(old_key, old_token)])
        await store.put(keys.node("n1"), records.node("n1"), guards=[leadership.guard()])
        await lease.revoke()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await store.close()


async def test_first_endpoint_down_at_open(etcd3: LocalEtcd) -> None:
    etcd3.kill(0)
    async with await open_store(etcd_url(etcd3)) as store:
        await store.put(keys.node("n1"), records.node("n1"))
        assert await store.get(keys.node("n1")) is not None


async def test_namespaces_keep_databases_apart(etcd3_shared: LocalEtcd, request: pytest.FixtureRequest) -> None:
    ns = namespace_for(request)
    async with (
        await open_store(etcd_url(etcd3_shared, ns + "-a")) as a,
        await open_store(etcd_url(etcd3_shared, ns + "-b")) as b,
    ):
        await a.put(keys.node("n1"), records.node("n1"))
        assert await b.get(keys.node("n1")) is None
        assert (await b.range(NODES)).kvs == ()


async def test_a_value_that_is_not_json_is_reported(etcd3_shared: LocalEtcd, request: pytest.FixtureRequest) -> None:
    async with await open_store(etcd_url(etcd3_shared, namespace_for(request))) as store:
        backend: Any = store.backend
        stubs = await backend.conn.stubs()
        await stubs.kv.Put(
            rpc.PutRequest(key=backend.wire(keys.node("n1")), value=b"\xff not json"), metadata=stubs.metadata
        )
        with pytest.raises(InvalidRecord) as e:
            await store.get(keys.node("n1"))
        assert e.value.key == keys.node("n1") and "not JSON" in str(e.value)


def make_tls(directory: Path) -> TlsFiles:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=spdkvirt-test-ca",
    )
    for name in ("server", "client"):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
        )
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "1", "-extfile", str(ext))  # fmt: skip
    return TlsFiles(
        directory / "ca.crt",
        directory / "server.crt",
        directory / "server.key",
        directory / "client.crt",
        directory / "client.key",
    )


async def test_tls_with_client_certificates_and_password(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cluster = start_cluster(1, tls=make_tls(tmp_path))
    try:
        cluster.enable_auth("s3cret")
        url = etcd_url(cluster).replace("etcd://", "etcd://root:s3cret@")
        async with await open_store(url) as store:
            await store.put(keys.node("n1"), records.node("n1"))
            kv = await store.get(keys.node("n1"))
            assert kv is not None
            lease = await store.grant_lease(2)
            await store.put(keys.node("n2"), records.node("n2"), lease=lease)
            await lease.revoke()
            assert await store.get(keys.node("n2")) is None
        with pytest.raises(StoreError, match="authentication failed"):
            await open_store(url.replace("s3cret", "wrong"))
        plain = etcd_url(cluster).split("?")[0] + "?timeout=1&retry_timeout=2"
        with pytest.raises(StoreError):
            await open_store(plain)
    finally:
        cluster.stop()


async def test_a_watch_outlives_its_connection(etcd3_shared: LocalEtcd, request: pytest.FixtureRequest) -> None:
    """When the client moves to another endpoint, the retired channel is closed later: a watch still
    streaming on it reconnects instead of ending."""
    async with await open_store(etcd_url(etcd3_shared, namespace_for(request))) as store:
        backend: Any = store.backend
        got: list[Any] = []
        watch = await store.watch(NODES)

        async def watcher() -> None:
            async with watch as w:
                async for ev in w:
                    got.append(ev)

        task = asyncio.create_task(watcher())
        await store.put(keys.node("n1"), records.node("n1"))
        backend.conn.failover(await backend.conn.stubs())
        await asyncio.sleep(backend.config.timeout + 1.5)
        await store.put(keys.node("n2"), records.node("n2"))
        t0 = time.monotonic()
        while len(got) < 2 and time.monotonic() - t0 < 10:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        assert [e.key for e in got] == [keys.node("n1"), keys.node("n2")]


async def test_a_single_member_restart_is_survived(etcd1: LocalEtcd) -> None:
    async with await open_store(etcd_url(etcd1)) as store:
        watch = await store.watch(NODES)
        await store.put(keys.node("n1"), records.node("n1"))
        etcd1.kill(0, signal.SIGTERM)
        etcd1.restart(0)
        while True:
            try:
                await store.put(keys.node("n2"), records.node("n2"))
                break
            except (OutcomeUnknown, StoreUnavailable):
                await asyncio.sleep(0.1)
        got = []
        async with watch:
            async for ev in watch:
                got.append(ev.key)
                if len(got) == 2:
                    break
        assert got == [keys.node("n1"), keys.node("n2")]
