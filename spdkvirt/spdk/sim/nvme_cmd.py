"""NVMe submission and completion queue entries (NVMe base and NVMe-oF specifications 2.0).

A :class:`Command` is a 64-byte submission queue entry read through named fields; :func:`command`
builds one. A :class:`Completion` is the 16-byte completion queue entry. Status is kept as the
15-bit status field without the phase tag: SC in bits 0-7, SCT in bits 8-10, CRD 11-12, More 13,
DNR 14.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum


class Admin(IntEnum):
    GET_LOG_PAGE = 0x02
    IDENTIFY = 0x06
    ABORT = 0x08
    SET_FEATURES = 0x09
    GET_FEATURES = 0x0A
    ASYNC_EVENT_REQUEST = 0x0C
    KEEP_ALIVE = 0x18
    FABRICS = 0x7F


class Io(IntEnum):
    FLUSH = 0x00
    WRITE = 0x01
    READ = 0x02
    WRITE_ZEROES = 0x08
    DATASET_MANAGEMENT = 0x09


class Fabrics(IntEnum):
    PROPERTY_SET = 0x00
    CONNECT = 0x01
    PROPERTY_GET = 0x04
    AUTHENTICATION_SEND = 0x05
    AUTHENTICATION_RECEIVE = 0x06
    DISCONNECT = 0x08


# SGL descriptor type (upper nibble) and subtype (lower nibble) in byte 15 of the data pointer
SGL_DATA_BLOCK_OFFSET = 0x01  # data block, offset: the data is in the capsule
SGL_TRANSPORT_DATA_BLOCK = 0x5A  # transport data block: the data moves in H2C/C2H Data PDUs
PSDT_SGL = 0x40  # flags: the data pointer is an SGL (the only kind NVMe-oF has)


@dataclass(frozen=True)
class Command:
    """A submission queue entry."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 64:
            raise ValueError(f"a submission queue entry has 64 bytes, not {len(self.raw)}")

    @property
    def opcode(self) -> int:
        return self.raw[0]

    @property
    def cid(self) -> int:
        return int.from_bytes(self.raw[2:4], "little")

    @property
    def nsid(self) -> int:
        return int.from_bytes(self.raw[4:8], "little")

    @property
    def fctype(self) -> int:
        """A fabrics command's type (byte 4, where other commands have their nsid)."""
        return self.raw[4]

    def dword(self, n: int) -> int:
        """Command dword ``n`` (10-15: the command-specific ones)."""
        return int.from_bytes(self.raw[4 * n : 4 * n + 4], "little")

    @property
    def sgl(self) -> tuple[int, int, int]:
        """The data pointer's SGL descriptor: address, length, type/subtype byte."""
        address, length = struct.unpack_from("<QI", self.raw, 24)
        return address, length, self.raw[39]

    @property
    def slba(self) -> int:
        return int.from_bytes(self.raw[40:48], "little")

    @property
    def nlb(self) -> int:
        """Blocks a read or write moves (the 0-based field plus one)."""
        return (self.dword(12) & 0xFFFF) + 1


def command(
    opcode: int,
    cid: int = 0,
    nsid: int = 0,
    *,
    dwords: dict[int, int] | None = None,
    length: int = 0,
    in_capsule: bool = False,
    fctype: int | None = None,
) -> Command:
    """A command with an SGL data pointer for ``length`` bytes (in the capsule or moved by data
    PDUs), command dwords by number, and for a fabrics command its type."""
    raw = bytearray(64)
    struct.pack_into("<BBH", raw, 0, opcode, PSDT_SGL, cid)
    if fctype is not None:
        raw[4] = fctype
    else:
        struct.pack_into("<I", raw, 4, nsid)
    for n, value in (dwords or {}).items():
        struct.pack_into("<I", raw, 4 * n, value & 0xFFFFFFFF)
    struct.pack_into("<QI3xB", raw, 24, 0, length, SGL_DATA_BLOCK_OFFSET if in_capsule else SGL_TRANSPORT_DATA_BLOCK)
    return Command(bytes(raw))


# status field values (SCT << 8 | SC)
SUCCESS = 0x000
INVALID_OPCODE = 0x001
INVALID_FIELD = 0x002
COMMAND_ID_CONFLICT = 0x003
DATA_TRANSFER_ERROR = 0x004
INTERNAL_ERROR = 0x006
ABORTED_BY_REQUEST = 0x007
INVALID_NAMESPACE = 0x00B
COMMAND_SEQUENCE_ERROR = 0x00C
DATA_SGL_LENGTH_INVALID = 0x00F
SGL_DESCRIPTOR_TYPE_INVALID = 0x011
TRANSIENT_TRANSPORT_ERROR = 0x022
LBA_OUT_OF_RANGE = 0x080
NAMESPACE_NOT_READY = 0x082
ASYNC_EVENT_LIMIT_EXCEEDED = 0x105  # command specific
INVALID_LOG_PAGE = 0x109
CONNECT_INCOMPATIBLE_FORMAT = 0x180  # fabrics connect (command specific)
CONNECT_CONTROLLER_BUSY = 0x181
CONNECT_INVALID_PARAMETERS = 0x182
CONNECT_INVALID_HOST = 0x184
ANA_PERSISTENT_LOSS = 0x301  # path related
ANA_INACCESSIBLE = 0x302
ANA_TRANSITION = 0x303
DNR = 1 << 14


def status_text(status: int) -> str:
    return "ok" if status == SUCCESS else f"sct={(status >> 8) & 7} sc={status & 0xFF}"


@dataclass(frozen=True)
class Completion:
    """A completion queue entry."""

    cid: int
    status: int = SUCCESS
    dw0: int = 0
    dw1: int = 0
    sqhd: int = 0
    sqid: int = 0

    def encode(self) -> bytes:
        return struct.pack("<IIHHHH", self.dw0, self.dw1, self.sqhd, self.sqid, self.cid, (self.status & 0x7FFF) << 1)

    @classmethod
    def decode(cls, raw: bytes) -> Completion:
        dw0, dw1, sqhd, sqid, cid, status = struct.unpack("<IIHHHH", raw)
        return cls(cid, status >> 1, dw0, dw1, sqhd, sqid)

    @property
    def text(self) -> str:
        return status_text(self.status)
