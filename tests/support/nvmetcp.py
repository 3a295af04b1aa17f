"""A small NVMe/TCP host (NVMe/TCP transport 1.0, no digests, no TLS) for tests against a real
SPDK target: fabrics connect of an admin and one I/O queue, controller enable, identify
namespace, reads and writes, keep-alive and shutdown.

It is the tests' writer and reader, not a product path (spdkvirt never touches user data). It
offers what the simulator's host connection offers (``read``/``write``/``shutdown``/``close``,
statuses ``"ok"`` or ``"sct=.. sc=.."``, ``WireError`` and ``ConnectRejected``), so a cluster
test can use either. Layouts follow the NVMe base, fabrics and TCP transport specifications, and
Linux's drivers/nvme/host/tcp.c where the specifications leave a choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid as uuidlib
from dataclasses import dataclass

from spdkvirt.spdk.sim.nvme_wire import OK, ConnectRejected, WireError

# PDU types
IC_REQ, IC_RESP, H2C_TERM, C2H_TERM, CMD, RSP, H2C_DATA, C2H_DATA, R2T = 0, 1, 2, 3, 4, 5, 6, 7, 9
LAST_PDU, SUCCESS = 0x04, 0x08  # C2H data flags
SGL_OFFSET = 0x01  # data block descriptor, offset subtype: data in the capsule
SGL_TRANSPORT = 0x5A  # transport data block: data in H2C/C2H PDUs
PSDT_SGL = 0x40
FABRICS, PROP_SET, CONNECT, PROP_GET = 0x7F, 0x00, 0x01, 0x04
IDENTIFY, KEEP_ALIVE, READ, WRITE = 0x06, 0x18, 0x02, 0x01
CC, CSTS = 0x14, 0x1C
CC_ENABLE = 1 | (6 << 16) | (4 << 20)  # EN, IOSQES 64 B, IOCQES 16 B
CC_SHUTDOWN = CC_ENABLE | (1 << 14)
DEFAULT_KATO_MS = 10_000
MAX_IO = 64 << 10  # one command's data at most (SPDK's default MDTS is 128 KiB)


@dataclass
class Completion:
    dw0: int
    dw1: int
    status: int  # status field without the phase bit: SC bits 0-7, SCT bits 8-10

    @property
    def text(self) -> str:
        return OK if self.status == 0 else f"sct={(self.status >> 8) & 7} sc={self.status & 0xFF}"


class Queue:
    """One queue pair on its own TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, maxh2c: int) -> None:
        self.reader = reader
        self.writer = writer
        self.maxh2c = maxh2c
        self.next_cid = 0
        self.pending: dict[int, asyncio.Future[Completion]] = {}
        self.buffers: dict[int, bytearray] = {}
        self.outgoing: dict[int, bytes] = {}
        self.task = asyncio.get_running_loop().create_task(self._read_loop())
        self.lost = asyncio.Event()
        self.last_read = b""

    @classmethod
    async def open(cls, traddr: str, trsvcid: str, limit_s: float) -> Queue:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(traddr, int(trsvcid)), limit_s)
        except (OSError, ValueError, TimeoutError) as e:
            raise ConnectRejected(f"cannot connect to {traddr}:{trsvcid}: {e}") from e
        try:
            # ICReq: PFV 0, HPDA 0, no digests, MAXR2T 0 (one outstanding R2T)
            writer.write(struct.pack("<BBBBI", IC_REQ, 0, 128, 0, 128) + bytes(120))
            head = await asyncio.wait_for(reader.readexactly(128), limit_s)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:
            writer.close()
            raise ConnectRejected(f"no ICResp from {traddr}:{trsvcid}: {e}") from e
        if head[0] != IC_RESP:
            writer.close()
            raise ConnectRejected(f"expected ICResp, got PDU type {head[0]}")
        (maxh2c,) = struct.unpack_from("<I", head, 12)
        return cls(reader, writer, maxh2c or 4096)

    # ---- the wire ---------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        try:
            while True:
                ch = await self.reader.readexactly(8)
                kind, flags, _hlen, pdo, plen = struct.unpack("<BBBBI", ch)
                rest = await self.reader.readexactly(plen - 8)
                pdu = ch + rest
                if kind == RSP:
                    dw0, dw1, _sqhd, _sqid, cid, status = struct.unpack_from("<IIHHHH", pdu, 8)
                    self._complete(cid, Completion(dw0, dw1, status >> 1))
                elif kind == C2H_DATA:
                    cid, _, offset, length = struct.unpack_from("<HHII", pdu, 8)
                    buf = self.buffers.get(cid)
                    if buf is not None:
                        buf[offset : offset + length] = pdu[pdo : pdo + length]
                    if flags & SUCCESS:
                        self._complete(cid, Completion(0, 0, 0))
                elif kind == R2T:
                    cid, ttag, offset, length = struct.unpack_from("<HHII", pdu, 8)
                    self._send_data(cid, ttag, offset, length)
                elif kind == C2H_TERM:
                    raise WireError("the target terminated the connection")
        except (asyncio.IncompleteReadError, OSError, WireError, struct.error):
            pass
        finally:
            self.lost.set()
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(WireError("connection lost"))
            self.pending.clear()

    def _complete(self, cid: int, c: Completion) -> None:
        fut = self.pending.pop(cid, None)
        self.outgoing.pop(cid, None)
        if fut is not None and not fut.done():
            fut.set_result(c)

    def _send_data(self, cid: int, ttag: int, offset: int, length: int) -> None:
        data = self.outgoing.get(cid, b"")
        end = offset + length
        while offset < end:
            n = min(self.maxh2c, end - offset)
            last = LAST_PDU if offset + n == end else 0
            head = struct.pack("<BBBBIHHII4x", H2C_DATA, last, 24, 24, 24 + n, cid, ttag, offset, n)
            self.writer.write(head + data[offset : offset + n])
            offset += n

    async def submit(self, sqe: bytearray, *, data: bytes = b"", read: int = 0, in_capsule: bool = False) -> Completion:
        """Send a command (SQE with opcode/fields set; CID and SGL are filled here) and wait for
        its completion. ``data``: to write (in the capsule, or on R2T); ``read``: bytes expected
        back (they are in ``last_read`` then)."""
        if self.lost.is_set():
            raise WireError("connection lost")
        cid = self.next_cid
        self.next_cid = (self.next_cid + 1) & 0xFFFF
        sqe[1] |= PSDT_SGL
        struct.pack_into("<H", sqe, 2, cid)
        length = len(data) or read
        struct.pack_into("<QI3xB", sqe, 24, 0, length, SGL_OFFSET if in_capsule else SGL_TRANSPORT)
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self.pending[cid] = fut
        if read:
            self.buffers[cid] = bytearray(read)
        if data and not in_capsule:
            self.outgoing[cid] = data
        body = bytes(sqe) + (data if in_capsule else b"")
        pdo = 72 if in_capsule and data else 0
        self.writer.write(struct.pack("<BBBBI", CMD, 0, 72, pdo, 8 + len(body)) + body)
        try:
            await self.writer.drain()
        except OSError as e:
            raise WireError(str(e)) from e
        try:
            c = await fut
        finally:
            self.pending.pop(cid, None)
        self.last_read = bytes(self.buffers.pop(cid, b""))
        return c

    def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(OSError):
            self.writer.close()
        self.lost.set()


def _sqe(opcode: int, nsid: int = 0) -> bytearray:
    sqe = bytearray(64)
    sqe[0] = opcode
    struct.pack_into("<I", sqe, 4, nsid)
    return sqe


def _fabrics(fctype: int) -> bytearray:
    sqe = bytearray(64)
    sqe[0] = FABRICS
    sqe[4] = fctype
    return sqe


async def _connect_queue(
    q: Queue, qid: int, sqsize: int, kato_ms: int, cntlid: int, subnqn: str, hostnqn: str, hostid: str
) -> int:
    sqe = _fabrics(CONNECT)
    struct.pack_into("<HHHBxI", sqe, 40, 0, qid, sqsize - 1, 0, kato_ms)
    data = bytearray(1024)
    data[0:16] = uuidlib.UUID(hostid).bytes
    struct.pack_into("<H", data, 16, cntlid)
    sub, host = subnqn.encode(), hostnqn.encode()
    data[256 : 256 + len(sub)] = sub
    data[512 : 512 + len(host)] = host
    c = await q.submit(sqe, data=bytes(data), in_capsule=True)
    if c.status:
        raise ConnectRejected(f"connect to {subnqn} (queue {qid}) refused: {c.text}")
    return c.dw0 & 0xFFFF


class HostConnection:
    """A controller of one subsystem: admin queue, one I/O queue, the namespaces' block sizes."""

    def __init__(self, admin: Queue, io: Queue, cntlid: int, kato_ms: int) -> None:
        self.admin = admin
        self.io = io
        self.cntlid = cntlid
        self.kato_ms = kato_ms
        self.block_size: dict[int, int] = {}
        self.lost = asyncio.Event()
        self._keepalive: asyncio.Task[None] | None = None

    async def _property(self, offset: int, value: int | None = None) -> int:
        sqe = _fabrics(PROP_GET if value is None else PROP_SET)
        struct.pack_into("<B3xI", sqe, 40, 0, offset)
        if value is not None:
            struct.pack_into("<Q", sqe, 48, value)
        c = await self.admin.submit(sqe)
        if c.status:
            raise ConnectRejected(f"property {offset:#x}: {c.text}")
        return c.dw0

    async def _enable(self, limit_s: float) -> None:
        await self._property(CC, CC_ENABLE)
        end = asyncio.get_running_loop().time() + limit_s
        while not (await self._property(CSTS)) & 1:
            if asyncio.get_running_loop().time() > end:
                raise ConnectRejected("the controller did not become ready")
            await asyncio.sleep(0.01)

    async def namespace_block_size(self, nsid: int) -> int:
        if nsid not in self.block_size:
            sqe = _sqe(IDENTIFY, nsid)  # CNS 0: identify namespace
            c = await self.admin.submit(sqe, read=4096)
            if c.status:
                raise WireError(f"identify namespace {nsid}: {c.text}")
            ns = self.admin.last_read
            lbaf = ns[128 + 4 * (ns[26] & 0x0F) : 132 + 4 * (ns[26] & 0x0F)]
            self.block_size[nsid] = 1 << lbaf[2]
        return self.block_size[nsid]

    async def _rw(self, opcode: int, nsid: int, offset: int, length: int, data: bytes = b"") -> Completion:
        bs = await self.namespace_block_size(nsid)
        if offset % bs or length % bs or not length:
            raise ValueError(f"offset {offset} and length {length} must be whole blocks of {bs}")
        sqe = _sqe(opcode, nsid)
        struct.pack_into("<QI", sqe, 40, offset // bs, length // bs - 1)
        if opcode == WRITE:
            return await self.io.submit(sqe, data=data)
        return await self.io.submit(sqe, read=length)

    async def read(self, nsid: int, offset: int, length: int) -> tuple[str, bytes]:
        out = bytearray()
        for at in range(0, length, MAX_IO):
            c = await self._rw(READ, nsid, offset + at, min(MAX_IO, length - at))
            if c.status:
                return c.text, b""
            out += self.io.last_read
        return OK, bytes(out)

    async def write(self, nsid: int, offset: int, data: bytes) -> str:
        for at in range(0, len(data), MAX_IO):
            c = await self._rw(WRITE, nsid, offset + at, len(data[at : at + MAX_IO]), data[at : at + MAX_IO])
            if c.status:
                return c.text
        return OK

    async def _keep_alive(self) -> None:
        with contextlib.suppress(WireError, TimeoutError, asyncio.CancelledError):
            while not self.lost.is_set():
                await asyncio.sleep(self.kato_ms / 2000)
                await asyncio.wait_for(self.admin.submit(_sqe(KEEP_ALIVE)), self.kato_ms / 1000)
        self.lost.set()

    async def shutdown(self) -> None:
        """Shutdown notification (CC.SHN normal), then close."""
        if not self.admin.lost.is_set():
            with contextlib.suppress(WireError, TimeoutError, ConnectRejected):
                await asyncio.wait_for(self._property(CC, CC_SHUTDOWN), 1.0)
        self.close()

    def close(self) -> None:
        self.lost.set()
        if self._keepalive is not None:
            self._keepalive.cancel()
        self.io.close()
        self.admin.close()


async def connect(
    traddr: str,
    trsvcid: str,
    subnqn: str,
    hostnqn: str,
    hostid: str,
    *,
    kato_ms: int = DEFAULT_KATO_MS,
    limit_s: float = 5.0,
) -> HostConnection:
    """Connect a controller (admin queue, enable, one I/O queue); raises ConnectRejected."""
    admin = await Queue.open(traddr, trsvcid, limit_s)
    io: Queue | None = None
    try:
        cntlid = await asyncio.wait_for(_connect_queue(admin, 0, 32, kato_ms, 0xFFFF, subnqn, hostnqn, hostid), limit_s)
        conn = HostConnection(admin, admin, cntlid, kato_ms)
        await conn._enable(limit_s)
        io = await Queue.open(traddr, trsvcid, limit_s)
        await asyncio.wait_for(_connect_queue(io, 1, 32, 0, cntlid, subnqn, hostnqn, hostid), limit_s)
    except BaseException:
        admin.close()
        if io is not None:
            io.close()
        raise
    conn.io = io
    conn._keepalive = asyncio.get_running_loop().create_task(conn._keep_alive())
    return conn
