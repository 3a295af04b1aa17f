"""Connection to an etcd cluster: endpoint failover, TLS, user/password, retries.

Talks etcd's v3 gRPC API through aetcd's generated bindings (``aetcd.rpc``) over a channel made here,
because spdkvirt needs what ``aetcd.Client`` lacks: several endpoints with failover, TLS with client
certificates, and re-authentication after a failover (simple auth tokens are per member).

Retry rules follow etcd's own client: a read is retried on another endpoint until ``retry_timeout``;
a write is retried only when it surely was not applied (no connection could be made, or the member
refused it for having no leader: every request carries etcd's ``hasleader`` requirement). A write that
was in flight when its connection broke raises :class:`OutcomeUnknown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped]
from aetcd import rpc

from spdkvirt.store.config import EtcdConfig
from spdkvirt.store.errors import OutcomeUnknown, StoreError, StoreUnavailable

T = TypeVar("T")

_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 16 << 20),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
)
_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}
#: error texts meaning the request never reached a member that could apply it
_NOT_APPLIED = (
    "failed to connect to all addresses",
    "connection refused",
    "no connection available",
    "etcdserver: no leader",
    "etcdserver: too many requests",
    "etcdserver: not capable",
)
_AUTH = ("invalid auth token", "auth store is old", "user name is empty")


class EtcdRpcError(StoreError):
    """An etcd error that retrying does not cure."""

    def __init__(self, what: str, code: str, details: str) -> None:
        self.code = code
        self.details = details
        super().__init__(f"{what}: {code}: {details}")


@dataclass(frozen=True)
class Stubs:
    """The gRPC stubs of one connection (``gen`` numbers connections, for failover)."""

    gen: int
    endpoint: str
    kv: Any
    watch: Any
    lease: Any
    maintenance: Any
    metadata: tuple[tuple[str, str], ...]


def cancelled_from_outside() -> bool:
    """Whether the running task is being cancelled (rather than gRPC cancelling a call because its
    channel was closed, which also raises CancelledError)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def details(e: Any) -> str:
    return str(e.details() or "")


def is_auth_error(e: Any) -> bool:
    return e.code() == grpc.StatusCode.UNAUTHENTICATED or any(a in details(e) for a in _AUTH)


def is_transient(e: Any) -> bool:
    return bool(e.code() in _TRANSIENT)


def not_applied(e: Any) -> bool:
    text = details(e).lower()
    return e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED or any(t in text for t in _NOT_APPLIED)


class Connection:
    """One live channel to one endpoint at a time; moves on to the next endpoint when it fails."""

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config
        self._index = 0
        self._gen = 0
        self._current: Stubs | None = None
        self._channel: Any = None
        self._connect_lock = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()
        self._closed = False
        self._credentials = self._load_credentials()

    def _load_credentials(self) -> Any:
        c = self.config
        if not (c.tls or c.ca_file or c.cert_file):
            return None

        def read(p: str | None) -> bytes | None:
            return Path(p).read_bytes() if p else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(c.ca_file),
            private_key=read(c.key_file),
            certificate_chain=read(c.cert_file),
        )

    @property
    def endpoint(self) -> str:
        host, port = self.config.endpoints[self._index % len(self.config.endpoints)]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def stubs(self) -> Stubs:
        """The current connection's stubs, connecting (and authenticating) first if needed."""
        if self._closed:
            raise StoreError("etcd connection is closed")
        current = self._current
        if current is not None:
            return current
        async with self._connect_lock:
            if self._current is None:
                self._current = await self._connect()
            return self._current

    async def _connect(self) -> Stubs:
        target = self.endpoint
        options = list(_CHANNEL_OPTIONS)
        if self.config.server_name:
            options.append(("grpc.ssl_target_name_override", self.config.server_name))
        if self._credentials is not None:
            channel = grpc.aio.secure_channel(target, self._credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        self._gen += 1
        metadata: tuple[tuple[str, str], ...] = (("hasleader", "true"),)
        if self.config.user is not None:
            try:
                resp = await rpc.AuthStub(channel).Authenticate(
                    rpc.AuthenticateRequest(name=self.config.user, password=self.config.password),
                    timeout=self.config.timeout,
                )
            except grpc.aio.AioRpcError as e:
                await channel.close()
                if is_transient(e):
                    self._index += 1
                    raise
                raise EtcdRpcError(f"etcd {target}: authentication", e.code().name, details(e)) from None
            metadata += (("token", resp.token),)
        self._channel = channel
        return Stubs(
            gen=self._gen,
            endpoint=target,
            kv=rpc.KVStub(channel),
            watch=rpc.WatchStub(channel),
            lease=rpc.LeaseStub(channel),
            maintenance=rpc.MaintenanceStub(channel),
            metadata=metadata,
        )

    def failover(self, stubs: Stubs, *, rotate: bool = True) -> None:
        """Drop the connection ``stubs`` came from (once, however many callers saw it fail)."""
        if self._current is None or self._current.gen != stubs.gen:
            return
        self._current = None
        if rotate:
            self._index += 1
        channel, self._channel = self._channel, None
        if channel is not None:
            task = asyncio.get_running_loop().create_task(self._close_later(channel))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    async def _close_later(self, channel: Any) -> None:
        # let requests still in flight on the old channel finish or fail by themselves
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(self.config.timeout + 1)
        await channel.close()

    async def call(self, what: str, fn: Callable[[Stubs], Awaitable[T]], *, idempotent: bool) -> T:
        """Run ``fn`` against the current endpoint, failing over and retrying as the rules allow."""
        deadline = time.monotonic() + self.config.retry_timeout
        delay = 0.02
        last = ""
        while True:
            stubs: Stubs | None = None
            try:
                stubs = await self.stubs()
                return await fn(stubs)
            except asyncio.CancelledError:
                if cancelled_from_outside() or stubs is None:
                    raise
                # the channel was closed under the call
                last = "channel closed"
                self.failover(stubs)
                if not idempotent:
                    raise OutcomeUnknown(f"{what}: the connection to {stubs.endpoint} closed mid-request") from None
            except grpc.aio.AioRpcError as e:
                last = f"{e.code().name}: {details(e)}"
                if stubs is None:
                    pass  # connecting failed: nothing was sent
                elif is_auth_error(e) and self.config.user is not None:
                    self.failover(stubs, rotate=False)
                elif is_transient(e):
                    self.failover(stubs)
                    if not idempotent and not not_applied(e):
                        raise OutcomeUnknown(
                            f"{what}: connection to {stubs.endpoint} broke while the request was in flight "
                            f"({last}); it may or may not have been applied"
                        ) from None
                else:
                    raise EtcdRpcError(what, e.code().name, details(e)) from None
            if time.monotonic() + delay > deadline:
                raise StoreUnavailable(
                    f"{what}: no etcd endpoint of {self.describe()} answered within "
                    f"{self.config.retry_timeout:g}s (last error: {last})"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    def describe(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.config.endpoints)

    async def close(self) -> None:
        self._closed = True
        self._current = None
        for task in list(self._retired):
            task.cancel()
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()
        for task in list(self._retired):
            with contextlib.suppress(asyncio.CancelledError):
                await task
