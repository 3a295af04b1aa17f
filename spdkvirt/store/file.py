"""The embedded store (``file:///path/to/dir``): the single-machine default, needing nothing installed.

Why one log rather than one file per key prefix: a multi-key transaction is a single appended line, so
it is atomic without a second journal; revisions and the change history that watches replay come
straight out of the log; appending one line and one fdatasync is the cheapest durable write. The log is
JSON lines and the snapshot plain JSON, so both stay readable (``spdkvirt store dump`` prints the state).

One process owns a directory at a time (an exclusive ``flock`` on ``LOCK``; a second opener gets
:class:`StoreLocked`). State lives in memory and is made durable by an fsync'd append log with
snapshot compaction (see :mod:`spdkvirt.store.filelog`); a write is acknowledged only once its log
line is on disk, and readers and watches only ever see acknowledged writes. Commits are serialised;
watches and lease expiry are served in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from spdkvirt.store import filelog
from spdkvirt.store.backend import Backend, BackendWatch, QueueWatch
from spdkvirt.store.config import DEFAULT_HISTORY, DEFAULT_SNAPSHOT_BYTES
from spdkvirt.store.errors import Compacted, CorruptStore, LeaseNotFound, StoreClosed, StoreError, StoreLocked
from spdkvirt.store.filestate import Change, MemState, copy_event, copy_kv
from spdkvirt.store.types import Compare, Event, Op, RangeResult, TxnResult

T = TypeVar("T")
log = logging.getLogger(__name__)

_EXPIRY_TICK = 0.25


class _FileWatch(QueueWatch):
    def __init__(self, backend: FileBackend, key: str, prefix: bool, start: int) -> None:
        super().__init__()
        self._backend = backend
        self._key = key
        self._prefix = prefix
        self._start = start

    def matches(self, ev: Event) -> bool:
        if ev.revision < self._start:
            return False
        return ev.key.startswith(self._key) if self._prefix else ev.key == self._key

    def push(self, item: Event | BaseException | None) -> None:
        self._queue.put_nowait(copy_event(item) if isinstance(item, Event) else item)

    async def close(self) -> None:
        self._backend._watchers.discard(self)
        self.push(None)


class FileBackend(Backend):
    """Embedded store in one directory. Create with :meth:`open`."""

    def __init__(self, path: Path, *, snapshot_bytes: int, history: int) -> None:
        self.path = path
        self.url = f"file://{path}"
        self._snapshot_bytes = snapshot_bytes
        self._history = max(1, history)
        self._state = MemState()
        self._lock = asyncio.Lock()
        self._watchers: set[_FileWatch] = set()
        self._deadlines: dict[int, float] = {}
        self._lock_fd = -1
        self._log_fd = -1
        self._log_bytes = 0
        self._closing = False
        self._failed: str | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._create = True

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        snapshot_bytes: int = DEFAULT_SNAPSHOT_BYTES,
        history: int = DEFAULT_HISTORY,
        create: bool = True,
    ) -> FileBackend:
        """Open (with ``create``: create if missing) the store in directory ``path``."""
        backend = cls(Path(path), snapshot_bytes=snapshot_bytes, history=history)
        backend._create = create
        await asyncio.to_thread(backend._load)
        backend._expiry = asyncio.create_task(backend._expire_leases(), name=f"lease expiry {backend.path}")
        return backend

    # opening

    def _load(self) -> None:
        self.path = self.path.absolute()
        self.url = f"file://{self.path}"
        created = not self.path.exists()
        if created and not self._create:
            raise StoreError(f"no file store at {self.path}")
        self.path.mkdir(parents=True, exist_ok=True)
        if created:
            filelog.fsync_dir(self.path.parent)
        self._take_lock()
        try:
            self._recover()
        except BaseException:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise

    def _take_lock(self) -> None:
        fd = os.open(self.path / filelog.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreLocked(
                f"file store {self.path} is already open in process {holder}; only one process may open "
                "a file store at a time (share a store between processes with etcd://)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _recover(self) -> None:
        for name in (filelog.SNAPSHOT, filelog.LOG):
            with contextlib.suppress(FileNotFoundError):
                (self.path / (name + ".tmp")).unlink()
        snap = filelog.read_snapshot(self.path / filelog.SNAPSHOT)
        try:
            self._state = MemState.from_snapshot(snap) if snap is not None else MemState()
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptStore(f"{self.path / filelog.SNAPSHOT}: bad contents ({e!r})") from None
        log_path = self.path / filelog.LOG
        contents = filelog.read_log(log_path)
        for entry in filelog.iter_entries_after(contents.entries, self._state.seq, log_path):
            self._apply(entry)
        exists = log_path.exists()
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if contents.good_bytes < contents.total_bytes:
            os.ftruncate(fd, contents.good_bytes)
            os.fsync(fd)
        if not exists:
            os.fsync(fd)
            filelog.fsync_dir(self.path)
        self._log_fd = fd
        self._log_bytes = contents.good_bytes
        now = time.monotonic()
        self._deadlines = {i: now + ttl for i, ttl in self._state.leases.items()}

    # applying log entries (on replay and after each durable append)

    def _apply(self, entry: dict[str, Any]) -> tuple[Event, ...]:
        st = self._state
        events: tuple[Event, ...] = ()
        if "rev" in entry:
            events = st.apply(int(entry["rev"]), entry.get("ch", []))
        if "grant" in entry:
            st.grant(int(entry["grant"]), int(entry["ttl"]))
            self._deadlines[int(entry["grant"])] = time.monotonic() + int(entry["ttl"])
        if "revoke" in entry:
            st.drop_lease(int(entry["revoke"]))
            self._deadlines.pop(int(entry["revoke"]), None)
        if "compact" in entry:
            st.compact(int(entry["compact"]))
        st.seq = int(entry["seq"])
        return events

    def _publish(self, events: Sequence[Event]) -> None:
        for w in list(self._watchers):
            for ev in events:
                if w.matches(ev):
                    w.push(ev)

    # committing

    def _check_open(self) -> None:
        if self._closing:
            raise StoreClosed(f"{self.url} is closed")
        if self._failed is not None:
            raise StoreError(f"{self.url}: a write failed ({self._failed}); reopen the store")

    async def _commit(self, build: Callable[[], tuple[dict[str, Any] | None, T]]) -> T:
        """Run ``build`` under the commit lock; make its log entry durable, then apply it.

        The commit runs in its own task so that a cancelled caller never leaves a half-done write.
        """
        self._check_open()
        task = asyncio.ensure_future(self._commit_locked(build))
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _commit_locked(self, build: Callable[[], tuple[dict[str, Any] | None, T]]) -> T:
        async with self._lock:
            self._check_open()
            entry, result = build()
            if entry is None:
                return result
            entry["seq"] = self._state.seq + 1
            data = filelog.encode_line(entry)
            try:
                await asyncio.to_thread(filelog.append_durable, self._log_fd, data)
            except OSError as e:
                self._failed = str(e)
                raise StoreError(f"{self.url}: write failed: {e}") from e
            self._log_bytes += len(data)
            self._publish(self._apply(entry))
            if self._log_bytes >= self._snapshot_bytes:
                # the write above is durable and acknowledged whatever happens to the snapshot
                await self._snapshot_locked()
            return result

    async def _snapshot_locked(self) -> None:
        st = self._state
        keep_from = st.revision - self._history + 1
        if keep_from > st.compact_revision:
            st.compact(keep_from)
        data = filelog.encode_snapshot(st.to_snapshot())
        try:
            await asyncio.to_thread(self._write_snapshot, data)
        except OSError as e:
            log.warning("%s: snapshot failed, the log keeps growing: %s", self.url, e)

    def _write_snapshot(self, data: bytes) -> None:
        # Until the new empty log replaces the old one, a failure leaves the old log in use and
        # consistent (entries already in the snapshot are skipped on replay).
        log_path = self.path / filelog.LOG
        filelog.write_atomic(self.path / filelog.SNAPSHOT, data)
        os.replace(filelog.write_temp(log_path, b""), log_path)
        # from here on the old log's descriptor is stale: failing now means failing for good
        fd = -1
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
            filelog.fsync_dir(self.path)
        except OSError as e:
            if fd >= 0:
                os.close(fd)
            self._failed = f"cannot reopen the log after a snapshot: {e}"
            raise
        os.close(self._log_fd)
        self._log_fd = fd
        self._log_bytes = 0

    # Backend API

    async def range(self, key: str, *, prefix: bool) -> RangeResult:
        self._check_open()
        return RangeResult(tuple(copy_kv(kv) for kv in self._state.range(key, prefix)), self._state.revision)

    async def revision(self) -> int:
        self._check_open()
        return self._state.revision

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> TxnResult:
        def build() -> tuple[dict[str, Any] | None, TxnResult]:
            plan = self._state.plan(compares, success, failure)
            if not plan.changes:
                return None, plan.result
            return {"rev": plan.result.revision, "ch": list(plan.changes)}, plan.result

        return await self._commit(build)

    def watch(self, key: str, *, prefix: bool, start_revision: int) -> BackendWatch:
        self._check_open()
        w = _FileWatch(self, key, prefix, start_revision)
        st = self._state
        if start_revision < st.compact_revision:
            w.push(Compacted(st.compact_revision))
            return w
        for ev in st.events_since(start_revision):
            if w.matches(ev):
                w.push(ev)
        self._watchers.add(w)
        return w

    async def lease_grant(self, ttl: int) -> int:
        if ttl < 1:
            raise ValueError(f"lease TTL must be at least 1 second, not {ttl}")

        def build() -> tuple[dict[str, Any] | None, int]:
            lease_id = secrets.randbelow(2**62) + 1
            while lease_id in self._state.leases:
                lease_id = secrets.randbelow(2**62) + 1
            return {"grant": lease_id, "ttl": ttl}, lease_id

        return await self._commit(build)

    async def lease_keepalive(self, lease_id: int) -> int:
        self._check_open()
        ttl = self._state.leases.get(lease_id)
        deadline = self._deadlines.get(lease_id)
        now = time.monotonic()
        if ttl is None or deadline is None or deadline <= now:
            raise LeaseNotFound(lease_id)
        self._deadlines[lease_id] = now + ttl
        return ttl

    async def lease_revoke(self, lease_id: int) -> None:
        def build() -> tuple[dict[str, Any] | None, None]:
            changes: tuple[Change, ...] = self._state.plan_revoke(lease_id)
            entry: dict[str, Any] = {"revoke": lease_id}
            if changes:
                entry.update(rev=self._state.revision + 1, ch=list(changes))
            return entry, None

        await self._commit(build)

    async def lease_ttl(self, lease_id: int) -> int | None:
        self._check_open()
        deadline = self._deadlines.get(lease_id)
        if lease_id not in self._state.leases or deadline is None:
            return None
        return max(0, math.ceil(deadline - time.monotonic()))

    async def compact(self, revision: int) -> None:
        def build() -> tuple[dict[str, Any] | None, None]:
            st = self._state
            if revision > st.revision:
                raise ValueError(f"cannot compact to future revision {revision} (current {st.revision})")
            if revision <= st.compact_revision:
                raise Compacted(st.compact_revision)
            return {"compact": revision}, None

        await self._commit(build)

    async def _expire_leases(self) -> None:
        while not self._closing:
            now = time.monotonic()
            for lease_id in [i for i, d in self._deadlines.items() if d <= now]:
                try:
                    await self.lease_revoke(lease_id)
                except LeaseNotFound:
                    self._deadlines.pop(lease_id, None)
                except StoreError:
                    break
            soonest = min(self._deadlines.values(), default=now + _EXPIRY_TICK)
            await asyncio.sleep(min(max(soonest - time.monotonic(), 0.01), _EXPIRY_TICK))

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        async with self._lock:
            for w in list(self._watchers):
                w.push(StoreClosed(f"{self.url} was closed"))
            self._watchers.clear()
            if self._log_fd >= 0:
                os.close(self._log_fd)
                self._log_fd = -1
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
