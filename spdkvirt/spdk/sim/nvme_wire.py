"""The message format between two simulators' NVMe/TCP ends, and what a controller reports.

This wire only ever joins two simulator processes (a real SPDK speaks real NVMe/TCP). Each message
is an 8-byte header (JSON length, payload length; big-endian u32), a JSON object and an optional
binary payload. A controller is two TCP connections, as in NVMe/TCP: the admin queue (qid 0:
connect, keep-alive, identify, asynchronous events) and one I/O queue (qid 1: read/write by nsid).
The exporting side is nvme_tcp.py, the connecting side nvme_host.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

_HEAD = struct.Struct(">II")
_MAX_JSON = 1 << 20
_MAX_DATA = 256 << 20

FIRMWARE_REVISION = "26.05"
VENDOR_ID = "0x8086"
NVME_VERSION = "2.0"
ANA_TRANSITION_TIME_SEC = 10
DEFAULT_MAX_IO_SIZE = 131072
POLL_GROUP_THREAD = "nvmf_tgt_poll_group_000"
DEFAULT_KATO_MS = 10000

# I/O completion statuses carried on the wire.
OK = "ok"
ANA_INACCESSIBLE = "ana_inaccessible"  # a path error: the host may retry on another path
INVALID_NAMESPACE = "invalid_namespace"  # do not retry
LBA_OUT_OF_RANGE = "lba_out_of_range"  # do not retry
INTERNAL_ERROR = "internal_error"  # the exported bdev failed: retryable

ANA_ACCESSIBLE = ("optimized", "non_optimized")


class WireError(Exception):
    """The connection broke or the peer spoke nonsense."""


class ConnectRejected(Exception):
    """The target refused the fabrics connect (unknown subsystem, host not allowed, no listener...)."""


# ---- framing ------------------------------------------------------------------------------------
def encode(msg: Mapping[str, Any], data: bytes = b"") -> bytes:
    body = json.dumps(msg, separators=(",", ":")).encode()
    return _HEAD.pack(len(body), len(data)) + body + data


async def recv_msg(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    """One message; raises WireError on EOF, reset or a malformed frame."""
    try:
        head = await reader.readexactly(_HEAD.size)
        jlen, dlen = _HEAD.unpack(head)
        if jlen > _MAX_JSON or dlen > _MAX_DATA:
            raise WireError("frame too large")
        body = await reader.readexactly(jlen)
        data = await reader.readexactly(dlen) if dlen else b""
        msg = json.loads(body)
    except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError) as e:
        raise WireError(str(e)) from e
    if not isinstance(msg, dict):
        raise WireError("not an object")
    return msg, data


class Sender:
    """Writes whole messages on one connection, one at a time."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.lock = asyncio.Lock()
        self.closed = False

    async def send(self, msg: Mapping[str, Any], data: bytes = b"") -> None:
        if self.closed:
            raise WireError("closed")
        async with self.lock:
            try:
                self.writer.write(encode(msg, data))
                await self.writer.drain()
            except (ConnectionError, OSError, RuntimeError) as e:
                raise WireError(str(e)) from e

    def close(self) -> None:
        """Close now; what a stuck peer has not taken yet is dropped (the connection is reset)."""
        self.closed = True
        with contextlib.suppress(Exception):
            if self.writer.transport.get_write_buffer_size():
                self.writer.transport.abort()
            else:
                self.writer.close()

    def peer(self) -> tuple[str, str]:
        return addr_of(self.writer.get_extra_info("peername"))

    def local(self) -> tuple[str, str]:
        return addr_of(self.writer.get_extra_info("sockname"))


def addr_of(info: Any) -> tuple[str, str]:
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), str(info[1])
    return "", ""


def adrfam_of(traddr: str) -> str:
    return "IPv6" if ":" in traddr else "IPv4"


def trid_json(traddr: str, trsvcid: str) -> dict[str, str]:
    return {"trtype": "TCP", "adrfam": adrfam_of(traddr), "traddr": traddr, "trsvcid": trsvcid}


# ---- what a controller reports and a host proves --------------------------------------------------------------------
@dataclass(frozen=True)
class NsData:
    """Identify-namespace data as the host sees it through one listener."""

    nsid: int
    nguid: str  # 32 upper-case hex digits, all zeros when the namespace has none
    uuid: str | None
    anagrpid: int
    ana_state: str
    block_size: int
    num_blocks: int
    write_granularity: int  # preferred sizes and alignments, in blocks (1-based)
    write_alignment: int
    unmap_granularity: int
    unmap_alignment: int
    optimal_write_size: int

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> NsData:
        return cls(**{f.name: obj[f.name] for f in fields(cls)})

    def same_namespace(self, other: NsData) -> bool:
        """bdev_nvme_compare_ns: the same NGUID and UUID."""
        return self.nguid == other.nguid and self.uuid == other.uuid


@dataclass(frozen=True)
class CtrlrData:
    """Identify-controller data."""

    cntlid: int
    subnqn: str
    model_number: str
    serial_number: str
    firmware_revision: str
    vendor_id: str
    nvme_version: str
    ana_reporting: bool
    anatt: int
    unmap: bool
    write_zeroes: bool

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> CtrlrData:
        return cls(**{f.name: obj[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class HostAuth:
    """What the host proves in the connect: SHA-256 digests of its key material, None when unused."""

    tls: str | None = None  # TLS PSK
    dhchap: str | None = None  # DH-HMAC-CHAP host key
    dhchap_ctrlr: str | None = None  # DH-HMAC-CHAP controller key (bidirectional authentication)

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, obj: Any) -> HostAuth:
        if not isinstance(obj, dict):
            return cls()
        return cls(**{f.name: obj.get(f.name) for f in fields(cls)})


def check_auth(secure: bool, need: HostAuth, given: HostAuth) -> str | None:
    """Why a connect fails authentication (TLS, then DH-HMAC-CHAP), or None when it passes."""
    if secure != (given.tls is not None):
        return "TLS handshake failed"
    if secure and given.tls != need.tls:
        return "TLS PSK mismatch"
    if need.dhchap is None:
        if given.dhchap_ctrlr is not None:
            return "controller authentication requested but not supported"
        return None
    if given.dhchap != need.dhchap:
        return "DH-HMAC-CHAP host authentication failed"
    if given.dhchap_ctrlr is not None and given.dhchap_ctrlr != need.dhchap_ctrlr:
        return "DH-HMAC-CHAP controller authentication failed"
    return None
