"""The connecting end of the NVMe/TCP wire: a host's controller connection (used by nvme_ctrlr.py).

`await connect(...)` opens the admin then the I/O queue and returns a `HostConnection` with the
controller data, the namespaces, `read`/`write`/`identify`, asynchronous namespace events and a
`lost` event: set when either connection breaks (a killed exporter resets them) or a keep-alive,
sent every KATO/2, stays unanswered for KATO (a silent exporter).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .nvme_wire import (
    DEFAULT_KATO_MS,
    OK,
    ConnectRejected,
    CtrlrData,
    HostAuth,
    NsData,
    Sender,
    WireError,
    recv_msg,
)


class _HostQpair:
    """One queue pair seen from the host: tagged requests, completions matched by tag."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        sender: Sender,
        on_event: Callable[[dict[str, Any]], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.reader = reader
        self.sender = sender
        self.on_event = on_event
        self.on_lost = on_lost
        self.pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self.next_tag = 0
        self.task: asyncio.Task[None] | None = None
        self.broken = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                msg, data = await recv_msg(self.reader)
                tag = msg.get("tag")
                if tag is None:
                    self.on_event(msg)
                    continue
                fut = self.pending.pop(tag, None) if isinstance(tag, int) else None
                if fut is not None and not fut.done():
                    fut.set_result((msg, data))
        except WireError:
            pass
        finally:
            self._fail_all()
            self.on_lost()

    def _fail_all(self) -> None:
        self.broken = True
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(WireError("connection lost"))
        self.pending.clear()

    async def request(self, msg: dict[str, Any], data: bytes = b"") -> tuple[dict[str, Any], bytes]:
        if self.broken:
            raise WireError("connection lost")
        tag = self.next_tag
        self.next_tag += 1
        fut: asyncio.Future[tuple[dict[str, Any], bytes]] = asyncio.get_running_loop().create_future()
        self.pending[tag] = fut
        try:
            await self.sender.send({**msg, "tag": tag}, data)
        except WireError:
            self.pending.pop(tag, None)
            raise
        return await fut

    def close(self) -> None:
        self.sender.close()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        self._fail_all()


@dataclass
class HostConnection:
    """A connected controller seen from the initiator: controller data, namespaces, I/O, liveness."""

    ctrlr: CtrlrData
    namespaces: dict[int, NsData]
    local: tuple[str, str]
    kato_ms: int
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    on_change: Callable[[HostConnection], None] | None = None
    admin: _HostQpair | None = None
    io: _HostQpair | None = None
    _keepalive: asyncio.Task[None] | None = None

    def _event(self, msg: dict[str, Any]) -> None:
        if msg.get("op") != "event":
            return
        try:
            self.ctrlr = CtrlrData.from_wire(msg["ctrlr"])
            self.namespaces = {n.nsid: n for n in (NsData.from_wire(o) for o in msg["namespaces"])}
        except (KeyError, TypeError):
            return
        if self.on_change is not None:
            self.on_change(self)

    def _lost(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            self.close()

    async def _keep_alive(self) -> None:
        """Keep-alive every KATO/2; an unanswered one means the target is gone."""
        if self.kato_ms == 0 or self.admin is None:
            return
        kato = self.kato_ms / 1000.0
        try:
            while not self.lost.is_set():
                await asyncio.sleep(kato / 2)
                await asyncio.wait_for(self.admin.request({"op": "keepalive"}), timeout=kato)
        except (TimeoutError, WireError):
            self._lost()

    async def identify(self) -> dict[int, NsData]:
        """The namespaces as the target sees them now (identify and ANA log page)."""
        if self.admin is None:
            raise WireError("not connected")
        msg, _ = await self.admin.request({"op": "identify"})
        try:
            return {n.nsid: n for n in (NsData.from_wire(o) for o in msg["namespaces"])}
        except (KeyError, TypeError) as e:
            raise WireError("malformed identify reply") from e

    async def read(self, nsid: int, offset: int, length: int) -> tuple[str, bytes]:
        """(status, data); raises WireError if the connection is lost before the completion."""
        if self.io is None:
            raise WireError("not connected")
        msg, data = await self.io.request({"op": "read", "nsid": nsid, "offset": offset, "length": length})
        return str(msg.get("status")), data

    async def write(self, nsid: int, offset: int, data: bytes) -> str:
        if self.io is None:
            raise WireError("not connected")
        msg, _ = await self.io.request({"op": "write", "nsid": nsid, "offset": offset}, data)
        return str(msg.get("status"))

    async def shutdown(self) -> None:
        """Tell the controller the host is going (shutdown notification), then close."""
        if self.admin is not None and not self.lost.is_set():
            with contextlib.suppress(WireError, TimeoutError):
                await asyncio.wait_for(self.admin.request({"op": "shutdown"}), timeout=1.0)
        self.close()

    def close(self) -> None:
        self.lost.set()
        for q in (self.admin, self.io):
            if q is not None:
                q.close()
        if self._keepalive is not None and self._keepalive is not asyncio.current_task():
            self._keepalive.cancel()


async def _open(traddr: str, trsvcid: str, hostaddr: str | None, limit_s: float) -> tuple[asyncio.StreamReader, Sender]:
    local = (hostaddr, 0) if hostaddr else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(traddr, int(trsvcid), local_addr=local), timeout=limit_s
        )
    except (OSError, ValueError, TimeoutError) as e:
        raise ConnectRejected(f"cannot connect to {traddr}:{trsvcid}: {e}") from e
    return reader, Sender(writer)


async def _handshake(
    reader: asyncio.StreamReader, sender: Sender, msg: dict[str, Any], limit_s: float
) -> dict[str, Any]:
    try:
        await sender.send(msg)
        reply, _ = await asyncio.wait_for(recv_msg(reader), timeout=limit_s)
    except (WireError, TimeoutError) as e:
        raise ConnectRejected(f"connect failed: {e}") from e
    if reply.get("status") != OK:
        raise ConnectRejected(str(reply.get("reason", "rejected")))
    return reply


async def connect(
    traddr: str,
    trsvcid: str,
    subnqn: str,
    hostnqn: str,
    hostid: str,
    *,
    hostaddr: str | None = None,
    kato_ms: int = DEFAULT_KATO_MS,
    limit_s: float = 1.0,
    auth: HostAuth | None = None,
) -> HostConnection:
    """Connect a controller (admin then I/O queue); raises ConnectRejected."""
    base = {
        "op": "connect",
        "subnqn": subnqn,
        "hostnqn": hostnqn,
        "hostid": hostid,
        "auth": (auth or HostAuth()).to_wire(),
    }
    opened: list[Sender] = []
    try:
        reader, sender = await _open(traddr, trsvcid, hostaddr, limit_s)
        opened.append(sender)
        reply = await _handshake(reader, sender, {**base, "qid": 0, "kato_ms": kato_ms}, limit_s)
        try:
            ctrlr = CtrlrData.from_wire(reply["ctrlr"])
            namespaces = {n.nsid: n for n in (NsData.from_wire(o) for o in reply["namespaces"])}
        except (KeyError, TypeError) as e:
            raise ConnectRejected("malformed connect reply") from e
        io_reader, io_sender = await _open(traddr, trsvcid, hostaddr, limit_s)
        opened.append(io_sender)
        await _handshake(io_reader, io_sender, {**base, "qid": 1, "cntlid": ctrlr.cntlid}, limit_s)
    except BaseException:  # refused, or the attempt was cancelled: nothing stays open
        for s in opened:
            s.close()
        raise
    conn = HostConnection(ctrlr, namespaces, sender.local(), kato_ms)
    conn.admin = _HostQpair(reader, sender, conn._event, conn._lost)
    conn.io = _HostQpair(io_reader, io_sender, conn._event, conn._lost)
    conn.admin.start()
    conn.io.start()
    conn._keepalive = asyncio.get_running_loop().create_task(conn._keep_alive())
    return conn
