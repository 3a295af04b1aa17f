"""The etcd store (``etcd://host:port[,host:port...]``): shared by every processor, survives losing one.

Values are stored as canonical JSON. An optional namespace (the URL's path) is put in front of every
key, so several databases can share one cluster. Watches reconnect by themselves after a lost
connection or member and resume from the revision after the last event delivered, so no event is
missed or repeated; a resume point that was compacted meanwhile ends the watch with
:class:`Compacted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc  # type: ignore[import-untyped]
from aetcd import rpc

from spdkvirt.store.backend import Backend, BackendWatch, QueueWatch
from spdkvirt.store.config import EtcdConfig
from spdkvirt.store.errors import Compacted, LeaseNotFound, StoreClosed, StoreError, StoreUnavailable
from spdkvirt.store.etcdconn import (
    Connection,
    EtcdRpcError,
    Stubs,
    cancelled_from_outside,
    details,
    is_auth_error,
    is_transient,
)
from spdkvirt.store.types import (
    Compare,
    Delete,
    Event,
    EventKind,
    KeyValue,
    Op,
    OpResult,
    Put,
    RangeResult,
    TxnResult,
    Undecodable,
    canonical_json,
    prefix_end,
)

_OPS = {"==": rpc.Compare.EQUAL, "!=": rpc.Compare.NOT_EQUAL, "<": rpc.Compare.LESS, ">": rpc.Compare.GREATER}
_TARGETS = {
    "mod": (rpc.Compare.MOD, "mod_revision"),
    "create": (rpc.Compare.CREATE, "create_revision"),
    "version": (rpc.Compare.VERSION, "version"),
    "lease": (rpc.Compare.LEASE, "lease"),
}


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as e:
        return Undecodable(bytes(raw), str(e))


class _EtcdWatch(QueueWatch):
    """A watch that outlives connections: a pump task feeds a queue the iterator reads."""

    def __init__(self, backend: EtcdBackend, key: str, prefix: bool, start_revision: int) -> None:
        super().__init__()
        self._backend = backend
        self._key = backend.wire(key)
        self._end = prefix_end(self._key) if prefix else b""
        self._next = start_revision
        self._pump = asyncio.get_running_loop().create_task(self._run(), name=f"etcd watch {key}")
        backend._watches.add(self)

    async def _requests(self) -> AsyncIterator[Any]:
        yield rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=self._key, range_end=self._end, start_revision=self._next, progress_notify=True
            )
        )
        # keep the request side open: closing it would end the watch
        await asyncio.Event().wait()

    async def _run(self) -> None:
        conn = self._backend.conn
        failing_since: float | None = None
        delay = 0.02
        try:
            while True:
                stubs: Stubs | None = None
                call: Any = None
                try:
                    stubs = await conn.stubs()
                    call = stubs.watch.Watch(self._requests(), metadata=stubs.metadata)
                    async for resp in call:
                        failing_since, delay = None, 0.02
                        if resp.compact_revision:
                            raise Compacted(resp.compact_revision)
                        if resp.canceled:
                            break
                        if resp.events:
                            for ev in resp.events:
                                self._next = ev.kv.mod_revision + 1
                                self._queue.put_nowait(self._backend.event(ev))
                        elif not resp.created and resp.header.revision >= self._next:
                            self._next = resp.header.revision + 1
                except asyncio.CancelledError:
                    if cancelled_from_outside():
                        raise
                    if stubs is not None:  # the channel was closed under the stream: reconnect
                        conn.failover(stubs)
                except grpc.aio.AioRpcError as e:
                    if stubs is not None and (is_transient(e) or is_auth_error(e)):
                        conn.failover(stubs, rotate=not is_auth_error(e))
                    elif stubs is not None:
                        raise EtcdRpcError("watch", e.code().name, details(e)) from None
                finally:
                    if call is not None:
                        call.cancel()
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                elif now - failing_since > conn.config.retry_timeout:
                    raise StoreUnavailable(f"watch: no etcd endpoint of {conn.describe()} answered")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
        except Exception as e:
            self._queue.put_nowait(e)

    async def close(self, reason: BaseException | None = None) -> None:
        self._backend._watches.discard(self)
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        self._queue.put_nowait(reason)


class EtcdBackend(Backend):
    """Store backend on an etcd v3 cluster."""

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config
        self.conn = Connection(config)
        self._ns = config.namespace.rstrip("/")
        self._nsb = self._ns.encode()
        self._watches: set[_EtcdWatch] = set()
        auth = f"{config.user}@" if config.user else ""
        self.url = f"etcd://{auth}{self.conn.describe()}{self._ns}"

    @classmethod
    async def open(cls, config: EtcdConfig) -> EtcdBackend:
        backend = cls(config)
        await backend.revision()
        return backend

    # encoding

    def wire(self, key: str) -> bytes:
        return self._nsb + key.encode()

    def _key(self, raw: bytes) -> str:
        return bytes(raw[len(self._nsb) :]).decode()

    def kv(self, kv: Any) -> KeyValue:
        return KeyValue(self._key(kv.key), _decode(kv.value), kv.create_revision, kv.mod_revision, kv.version, kv.lease)

    def event(self, ev: Any) -> Event:
        if ev.type == rpc.Event.DELETE:
            return Event(EventKind.DELETE, self._key(ev.kv.key), ev.kv.mod_revision)
        kv = self.kv(ev.kv)
        return Event(EventKind.PUT, kv.key, kv.mod_revision, kv.value, kv.create_revision, kv.version, kv.lease)

    def _range_request(self, key: str, prefix: bool) -> Any:
        k = self.wire(key)
        return rpc.RangeRequest(key=k, range_end=prefix_end(k) if prefix else b"")

    def _compare(self, c: Compare) -> Any:
        msg = rpc.Compare(key=self.wire(c.key), result=_OPS[c.op])
        if c.target == "value":
            msg.target = rpc.Compare.VALUE
            msg.value = canonical_json(c.operand)
        else:
            target, attr = _TARGETS[c.target]
            msg.target = target
            setattr(msg, attr, int(c.operand))
        return msg

    def _op(self, op: Op) -> Any:
        if isinstance(op, Put):
            return rpc.RequestOp(
                request_put=rpc.PutRequest(key=self.wire(op.key), value=canonical_json(op.value), lease=op.lease)
            )
        if isinstance(op, Delete):
            k = self.wire(op.key)
            return rpc.RequestOp(
                request_delete_range=rpc.DeleteRangeRequest(key=k, range_end=prefix_end(k) if op.prefix else b"")
            )
        return rpc.RequestOp(request_range=self._range_request(op.key, op.prefix))

    def _result(self, resp: Any) -> OpResult:
        which = resp.WhichOneof("response")
        if which == "response_range":
            return OpResult(kvs=tuple(self.kv(kv) for kv in resp.response_range.kvs))
        if which == "response_delete_range":
            return OpResult(deleted=resp.response_delete_range.deleted)
        return OpResult()

    # Backend API

    async def range(self, key: str, *, prefix: bool) -> RangeResult:
        req = self._range_request(key, prefix)

        async def do(s: Stubs) -> RangeResult:
            resp = await s.kv.Range(req, timeout=self.config.timeout, metadata=s.metadata)
            return RangeResult(tuple(self.kv(kv) for kv in resp.kvs), resp.header.revision)

        return await self.conn.call("range", do, idempotent=True)

    async def revision(self) -> int:
        req = rpc.RangeRequest(key=self.wire("/"), count_only=True)

        async def do(s: Stubs) -> int:
            resp = await s.kv.Range(req, timeout=self.config.timeout, metadata=s.metadata)
            return int(resp.header.revision)

        return await self.conn.call("revision", do, idempotent=True)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> TxnResult:
        req = rpc.TxnRequest(
            compare=[self._compare(c) for c in compares],
            success=[self._op(o) for o in success],
            failure=[self._op(o) for o in failure],
        )
        read_only = not any(isinstance(o, Put | Delete) for o in [*success, *failure])

        async def do(s: Stubs) -> TxnResult:
            resp = await s.kv.Txn(req, timeout=self.config.timeout, metadata=s.metadata)
            return TxnResult(resp.succeeded, resp.header.revision, tuple(self._result(r) for r in resp.responses))

        try:
            return await self.conn.call("txn", do, idempotent=read_only)
        except EtcdRpcError as e:
            if "lease not found" in e.details:
                leases = [o.lease for o in [*success, *failure] if isinstance(o, Put) and o.lease]
                raise LeaseNotFound(leases[0] if leases else 0) from None
            raise

    def watch(self, key: str, *, prefix: bool, start_revision: int) -> BackendWatch:
        return _EtcdWatch(self, key, prefix, start_revision)

    async def lease_grant(self, ttl: int) -> int:
        if ttl < 1:
            raise ValueError(f"lease TTL must be at least 1 second, not {ttl}")

        async def do(s: Stubs) -> int:
            resp = await s.lease.LeaseGrant(
                rpc.LeaseGrantRequest(TTL=ttl, ID=0), timeout=self.config.timeout, metadata=s.metadata
            )
            if resp.error:
                raise StoreError(f"lease grant: {resp.error}")
            return int(resp.ID)

        # a grant whose answer was lost leaves an unused lease that expires by itself: safe to retry
        return await self.conn.call("lease grant", do, idempotent=True)

    async def lease_keepalive(self, lease_id: int) -> int:
        async def do(s: Stubs) -> int:
            call = s.lease.LeaseKeepAlive(
                iter([rpc.LeaseKeepAliveRequest(ID=lease_id)]), timeout=self.config.timeout, metadata=s.metadata
            )
            try:
                async for resp in call:
                    return int(resp.TTL)
            finally:
                call.cancel()
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "keepalive stream ended"
            )

        ttl = await self.conn.call("lease keepalive", do, idempotent=True)
        if ttl <= 0:
            raise LeaseNotFound(lease_id)
        return ttl

    async def lease_revoke(self, lease_id: int) -> None:
        async def do(s: Stubs) -> None:
            await s.lease.LeaseRevoke(
                rpc.LeaseRevokeRequest(ID=lease_id), timeout=self.config.timeout, metadata=s.metadata
            )

        try:
            await self.conn.call("lease revoke", do, idempotent=True)
        except EtcdRpcError as e:
            if "lease not found" in e.details:
                raise LeaseNotFound(lease_id) from None
            raise

    async def lease_ttl(self, lease_id: int) -> int | None:
        async def do(s: Stubs) -> int:
            resp = await s.lease.LeaseTimeToLive(
                rpc.LeaseTimeToLiveRequest(ID=lease_id), timeout=self.config.timeout, metadata=s.metadata
            )
            return int(resp.TTL)

        try:
            ttl = await self.conn.call("lease ttl", do, idempotent=True)
        except EtcdRpcError as e:
            if "lease not found" in e.details:
                return None
            raise
        return None if ttl < 0 else ttl

    async def compact(self, revision: int) -> None:
        async def do(s: Stubs) -> None:
            await s.kv.Compact(
                rpc.CompactionRequest(revision=revision), timeout=self.config.timeout, metadata=s.metadata
            )

        try:
            await self.conn.call("compact", do, idempotent=True)
        except EtcdRpcError as e:
            if "future revision" in e.details:
                raise ValueError(f"cannot compact to future revision {revision}") from None
            if "compacted" in e.details:
                raise Compacted(revision) from None
            raise

    async def status(self) -> dict[str, Any]:
        """The answering member's status: its id, the leader's id, raft term and index."""

        async def do(s: Stubs) -> dict[str, Any]:
            resp = await s.maintenance.Status(rpc.StatusRequest(), timeout=self.config.timeout, metadata=s.metadata)
            return {
                "endpoint": s.endpoint,
                "member_id": resp.header.member_id,
                "leader": resp.leader,
                "raft_term": resp.raftTerm,
                "raft_index": resp.raftIndex,
                "version": resp.version,
            }

        return await self.conn.call("status", do, idempotent=True)

    async def close(self) -> None:
        for w in list(self._watches):
            await w.close(StoreClosed(f"{self.url} was closed"))
        await self.conn.close()
