"""NVMe/TCP PDUs (NVMe/TCP transport specification 1.0) and the NVMe queue entries they carry.

Pure values: each PDU is a frozen dataclass that :func:`encode` turns into bytes and
:func:`decode` (or :func:`read_pdu` from a stream) back. Header and data digests (CRC32C) are
added and checked when the connection negotiated them; padding follows the peer's PDU data
alignment. A PDU that breaks the transport's rules raises :class:`PduError` with the fatal
error status that a Termination Request then reports.

Layouts (little-endian), after the 8-byte common header (type, flags, hlen, pdo, plen):

- ICReq / ICResp (hlen 128): pfv u16, hpda/cpda u8, digest bits u8, maxr2t / maxh2cdata u32
- H2C/C2H Termination Request (hlen 24): fes u16, fei u32; then the offending header
- Capsule Command (hlen 72): a 64-byte submission queue entry; then in-capsule data
- Capsule Response (hlen 24): a 16-byte completion queue entry
- H2C Data / C2H Data (hlen 24): cccid u16, ttag u16 (H2C), datao u32, datal u32; then data
- R2T (hlen 24): cccid u16, ttag u16, r2to u32, r2tl u32
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from enum import IntEnum

from .crc import crc32c_digest


class PduType(IntEnum):
    IC_REQ = 0x00
    IC_RESP = 0x01
    H2C_TERM = 0x02
    C2H_TERM = 0x03
    CMD = 0x04
    RSP = 0x05
    H2C_DATA = 0x06
    C2H_DATA = 0x07
    R2T = 0x09


class Fes(IntEnum):
    """Fatal error status of a Termination Request."""

    INVALID_HEADER_FIELD = 0x01
    PDU_SEQUENCE_ERROR = 0x02
    HEADER_DIGEST_ERROR = 0x03
    DATA_TRANSFER_OUT_OF_RANGE = 0x04
    DATA_TRANSFER_LIMIT_EXCEEDED = 0x05
    UNSUPPORTED_PARAMETER = 0x06


HDGSTF, DDGSTF, LAST_PDU, SUCCESS = 0x01, 0x02, 0x04, 0x08  # common header flags
HLEN = {PduType.IC_REQ: 128, PduType.IC_RESP: 128, PduType.CMD: 72}  # every other type: 24
DIGEST = 4
MAX_TERM_HEADER = 152  # a termination request carries at most this much of the header in error
_CH = struct.Struct("<BBBBI")


class PduError(Exception):
    """A PDU that breaks the transport's rules: the connection ends with a Termination Request."""

    def __init__(self, fes: Fes, fei: int = 0, message: str = "") -> None:
        super().__init__(message or fes.name.lower().replace("_", " "))
        self.fes = fes
        self.fei = fei  # for an invalid header field: the offset of the byte at fault


@dataclass(frozen=True)
class ICReq:
    pfv: int = 0
    hpda: int = 0  # the host wants data at multiples of (hpda + 1) * 4 bytes
    hdgst: bool = False
    ddgst: bool = False
    maxr2t: int = 0  # outstanding R2Ts per command, less one


@dataclass(frozen=True)
class ICResp:
    pfv: int = 0
    cpda: int = 0
    hdgst: bool = False
    ddgst: bool = False
    maxh2cdata: int = 131072


@dataclass(frozen=True)
class TermReq:
    c2h: bool  # sent by the controller (C2H) or the host (H2C)
    fes: int
    fei: int = 0
    header: bytes = b""


@dataclass(frozen=True)
class CapsuleCmd:
    sqe: bytes  # 64 bytes
    data: bytes = b""


@dataclass(frozen=True)
class CapsuleResp:
    cqe: bytes  # 16 bytes


@dataclass(frozen=True)
class H2CData:
    cccid: int
    ttag: int
    datao: int
    data: bytes
    last: bool = True


@dataclass(frozen=True)
class C2HData:
    cccid: int
    datao: int
    data: bytes
    last: bool = True
    success: bool = False  # no Capsule Response follows: the command completed successfully


@dataclass(frozen=True)
class R2T:
    cccid: int
    ttag: int
    r2to: int
    r2tl: int


Pdu = ICReq | ICResp | TermReq | CapsuleCmd | CapsuleResp | H2CData | C2HData | R2T


@dataclass(frozen=True)
class Digests:
    """What a connection negotiated: digests, and the data alignment its peer asked for."""

    hdgst: bool = False
    ddgst: bool = False
    pda: int = 0  # the receiver's (h|c)pda: data starts at a multiple of (pda + 1) * 4


PLAIN = Digests()


def _kind(pdu: Pdu) -> PduType:
    match pdu:
        case ICReq():
            return PduType.IC_REQ
        case ICResp():
            return PduType.IC_RESP
        case TermReq(c2h=c2h):
            return PduType.C2H_TERM if c2h else PduType.H2C_TERM
        case CapsuleCmd():
            return PduType.CMD
        case CapsuleResp():
            return PduType.RSP
        case H2CData():
            return PduType.H2C_DATA
        case C2HData():
            return PduType.C2H_DATA
        case R2T():
            return PduType.R2T


def _specific(pdu: Pdu) -> tuple[bytes, bytes, int]:
    """The PDU-specific header (after the common header), its data, and its own flags."""
    match pdu:
        case ICReq():
            dgst = int(pdu.hdgst) | int(pdu.ddgst) << 1
            return struct.pack("<HBBI", pdu.pfv, pdu.hpda, dgst, pdu.maxr2t).ljust(120, b"\0"), b"", 0
        case ICResp():
            dgst = int(pdu.hdgst) | int(pdu.ddgst) << 1
            return struct.pack("<HBBI", pdu.pfv, pdu.cpda, dgst, pdu.maxh2cdata).ljust(120, b"\0"), b"", 0
        case TermReq():
            return struct.pack("<HI10x", pdu.fes, pdu.fei), pdu.header[:MAX_TERM_HEADER], 0
        case CapsuleCmd():
            return pdu.sqe, pdu.data, 0
        case CapsuleResp():
            return pdu.cqe, b"", 0
        case H2CData():
            return struct.pack("<HHII4x", pdu.cccid, pdu.ttag, pdu.datao, len(pdu.data)), pdu.data, LAST_PDU * pdu.last
        case C2HData():
            flags = LAST_PDU * pdu.last | SUCCESS * pdu.success
            return struct.pack("<HHII4x", pdu.cccid, 0, pdu.datao, len(pdu.data)), pdu.data, flags
        case R2T():
            return struct.pack("<HHII4x", pdu.cccid, pdu.ttag, pdu.r2to, pdu.r2tl), b"", 0


def _digested(kind: PduType) -> bool:
    """Digests never cover the connection set-up and termination PDUs."""
    return kind not in (PduType.IC_REQ, PduType.IC_RESP, PduType.H2C_TERM, PduType.C2H_TERM)


def encode(pdu: Pdu, d: Digests = PLAIN) -> bytes:
    """The PDU on the wire, with the digests and padding ``d`` asks for."""
    kind = _kind(pdu)
    specific, data, flags = _specific(pdu)
    hlen = 8 + len(specific)
    hd = d.hdgst and _digested(kind)
    dd = d.ddgst and _digested(kind) and bool(data)
    flags |= HDGSTF * hd | DDGSTF * dd
    pdo = 0
    pad = 0
    if data and kind not in (PduType.H2C_TERM, PduType.C2H_TERM):  # a termination's header in error: no pdo
        align = (d.pda + 1) * 4 if _digested(kind) else 1
        start = hlen + DIGEST * hd
        pdo = -(-start // align) * align
        pad = pdo - start
    plen = hlen + DIGEST * hd + pad + len(data) + DIGEST * dd
    head = _CH.pack(kind, flags, hlen, pdo, plen) + specific
    out = bytearray(head)
    if hd:
        out += crc32c_digest(head).to_bytes(4, "little")
    out += bytes(pad) + data
    if dd:
        out += crc32c_digest(data).to_bytes(4, "little")
    return bytes(out)


def _header_check(kind: int, hlen: int, pdo: int, plen: int, max_plen: int) -> PduType:
    try:
        t = PduType(kind)
    except ValueError:
        raise PduError(Fes.INVALID_HEADER_FIELD, 0, f"unknown PDU type {kind:#x}") from None
    if hlen != HLEN.get(t, 24):
        raise PduError(Fes.INVALID_HEADER_FIELD, 2, f"{t.name}: header length {hlen}")
    if plen < hlen or (pdo and (pdo < hlen or pdo > plen)):
        raise PduError(Fes.INVALID_HEADER_FIELD, 4 if plen < hlen else 3, f"{t.name}: pdo {pdo}, plen {plen}")
    if plen > max_plen:
        raise PduError(Fes.DATA_TRANSFER_LIMIT_EXCEEDED, 0, f"{t.name}: {plen} bytes")
    return t


def decode(raw: bytes, d: Digests = PLAIN) -> Pdu:
    """One whole PDU (its common header says how long it is)."""
    kind, flags, hlen, pdo, plen = _CH.unpack_from(raw)
    t = _header_check(kind, hlen, pdo, plen, plen)
    if plen != len(raw):
        raise PduError(Fes.INVALID_HEADER_FIELD, 4, f"{t.name}: plen {plen}, {len(raw)} bytes")
    hd, dd = bool(flags & HDGSTF), bool(flags & DDGSTF)
    if _digested(t) and (hd != d.hdgst or (dd and not d.ddgst)):
        raise PduError(Fes.INVALID_HEADER_FIELD, 1, f"{t.name}: digest flags {flags:#x}")
    head = raw[:hlen]
    if hd and int.from_bytes(raw[hlen : hlen + DIGEST], "little") != crc32c_digest(head):
        raise PduError(Fes.HEADER_DIGEST_ERROR)
    data = b""
    if pdo:
        data = raw[pdo : plen - DIGEST * dd]
        if dd and int.from_bytes(raw[plen - DIGEST : plen], "little") != crc32c_digest(data):
            raise DataDigestError(t, head)
    elif t in (PduType.H2C_TERM, PduType.C2H_TERM):
        data = raw[hlen:plen]
    return _parse(t, flags, head, data)


class DataDigestError(Exception):
    """A data digest that does not match: the command fails (Transient Transport Error), the
    connection lives on."""

    def __init__(self, kind: PduType, header: bytes) -> None:
        super().__init__(f"{kind.name}: data digest error")
        self.kind = kind
        self.header = header


def _parse(t: PduType, flags: int, head: bytes, data: bytes) -> Pdu:
    if t in (PduType.IC_REQ, PduType.IC_RESP):
        pfv, pda, dgst, value = struct.unpack_from("<HBBI", head, 8)
        if t == PduType.IC_REQ:
            return ICReq(pfv, pda, bool(dgst & 1), bool(dgst & 2), value)
        return ICResp(pfv, pda, bool(dgst & 1), bool(dgst & 2), value)
    if t in (PduType.H2C_TERM, PduType.C2H_TERM):
        fes, fei = struct.unpack_from("<HI", head, 8)
        return TermReq(t == PduType.C2H_TERM, fes, fei, data)
    if t == PduType.CMD:
        return CapsuleCmd(head[8:72], data)
    if t == PduType.RSP:
        return CapsuleResp(head[8:24])
    cccid, ttag, offset, length = struct.unpack_from("<HHII", head, 8)
    if t == PduType.R2T:
        return R2T(cccid, ttag, offset, length)
    if length != len(data):
        raise PduError(Fes.INVALID_HEADER_FIELD, 16, f"{t.name}: datal {length}, {len(data)} bytes of data")
    if t == PduType.H2C_DATA:
        return H2CData(cccid, ttag, offset, data, bool(flags & LAST_PDU))
    return C2HData(cccid, offset, data, bool(flags & LAST_PDU), bool(flags & SUCCESS))


async def read_pdu(reader: asyncio.StreamReader, d: Digests = PLAIN, max_plen: int = 1 << 24) -> Pdu:
    """The next PDU from ``reader``; raises PduError for a malformed one (its header is
    checked before the rest is read), asyncio.IncompleteReadError at the end of the stream."""
    ch = await reader.readexactly(8)
    kind, _flags, hlen, pdo, plen = _CH.unpack(ch)
    _header_check(kind, hlen, pdo, plen, max_plen)
    return decode(ch + await reader.readexactly(plen - 8), d)
