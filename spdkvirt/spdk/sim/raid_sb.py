"""The raid superblock: its on-disk layout, checksum, and reading it from a bdev.

The superblock sits at offset 0 of every member (the data starts at data_offset, 1 MiB in).
It names the raid (name, uuid, level, strip size, size) and lists the members by bdev uuid
with their slot and state; a sequence number grows with every update, so that the newest
copy wins when a raid is assembled again after a restart. The layout follows SPDK's
(signature "SPDKRAID", a 256-byte header, 64 bytes per member, crc32c), so a simulated
superblock lives inside the member's data exactly where SPDK keeps its own.
"""

from __future__ import annotations

import struct
import uuid as uuidlib
from dataclasses import dataclass, field, replace

from .bdev import Bdev
from .crc import crc32c
from .errors import EINVAL, EIO, RpcError

SIGNATURE = b"SPDKRAID"
VERSION_MAJOR = 1
VERSION_MINOR = 0
NAME_SIZE = 64
HEADER_SIZE = 256
ENTRY_SIZE = 64
MAX_LENGTH = HEADER_SIZE + 255 * ENTRY_SIZE
MIN_DATA_OFFSET_BYTES = 1024 * 1024

# member states
MISSING = 0
CONFIGURED = 1
FAILED = 2
SPARE = 3

# raid level codes as stored
LEVEL_CODES = {"raid0": 0, "raid1": 1, "raid5f": 95, "concat": 99}
LEVEL_NAMES = {code: name for name, code in LEVEL_CODES.items()}

# signature, major, minor, length, crc, flags, uuid, name, raid_size, block_size, level,
# strip_size, state, seq_number, num_base_bdevs, reserved, base_bdevs_size
_HEADER = struct.Struct("<8sHHIII16s64sQIIIIQB118sB")
# uuid, data_offset, data_size, state, flags, slot, reserved
_ENTRY = struct.Struct("<16sQQIIB23s")
assert _HEADER.size == HEADER_SIZE and _ENTRY.size == ENTRY_SIZE


@dataclass
class SbMember:
    """One member entry of a superblock."""

    uuid: str
    data_offset: int
    data_size: int
    state: int
    slot: int
    flags: int = 0


@dataclass
class Superblock:
    uuid: str
    name: str
    raid_size: int
    block_size: int
    level: int
    strip_size: int  # in blocks
    num_base_bdevs: int
    seq_number: int = 0
    state: int = 0
    flags: int = 0
    version_minor: int = VERSION_MINOR
    members: list[SbMember] = field(default_factory=list)

    @property
    def length(self) -> int:
        return HEADER_SIZE + ENTRY_SIZE * len(self.members)

    def copy(self) -> Superblock:
        return replace(self, members=[replace(m) for m in self.members])

    def member_by_uuid(self, uuid: str) -> SbMember | None:
        for m in self.members:
            if m.uuid == uuid:
                return m
        return None

    def encode(self) -> bytes:
        """The superblock bytes with a fresh checksum (exactly `length` bytes)."""
        raw = bytearray(self._pack(0))
        crc = crc32c(bytes(raw))
        struct.pack_into("<I", raw, 16, crc)
        return bytes(raw)

    def _pack(self, crc: int) -> bytes:
        head = _HEADER.pack(
            SIGNATURE,
            VERSION_MAJOR,
            self.version_minor,
            self.length,
            crc,
            self.flags,
            uuidlib.UUID(self.uuid).bytes,
            self.name.encode()[: NAME_SIZE - 1],
            self.raid_size,
            self.block_size,
            self.level,
            self.strip_size,
            self.state,
            self.seq_number,
            self.num_base_bdevs,
            bytes(118),
            len(self.members),
        )
        body = b"".join(
            _ENTRY.pack(uuidlib.UUID(m.uuid).bytes, m.data_offset, m.data_size, m.state, m.flags, m.slot, bytes(23))
            for m in self.members
        )
        return head + body


class NeedMore(Exception):
    """The buffer holds the header but not the whole superblock."""

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length


def parse(buf: bytes) -> Superblock:
    """Parse a superblock; raises ValueError when there is no valid one, NeedMore for a short read."""
    if len(buf) < HEADER_SIZE or buf[:8] != SIGNATURE:
        raise ValueError("invalid signature")
    (
        _sig,
        major,
        minor,
        length,
        crc,
        flags,
        raw_uuid,
        raw_name,
        raid_size,
        block_size,
        level,
        strip_size,
        state,
        seq,
        num_base,
        _res,
        base_size,
    ) = _HEADER.unpack_from(buf, 0)
    if length > len(buf):
        if length > MAX_LENGTH:
            raise ValueError("incorrect superblock length")
        raise NeedMore(length)
    if length < HEADER_SIZE + ENTRY_SIZE * base_size:
        raise ValueError("incorrect superblock length")
    check = bytearray(buf[:length])
    struct.pack_into("<I", check, 16, 0)
    if crc32c(bytes(check)) != crc:
        raise ValueError("incorrect superblock crc")
    if major != VERSION_MAJOR:
        raise ValueError("unsupported superblock version")
    members = []
    for i in range(base_size):
        (m_uuid, off, size, m_state, m_flags, slot, _r) = _ENTRY.unpack_from(buf, HEADER_SIZE + i * ENTRY_SIZE)
        if slot >= num_base:
            raise ValueError("invalid slot")
        members.append(SbMember(str(uuidlib.UUID(bytes=m_uuid)), off, size, m_state, slot, m_flags))
    return Superblock(
        uuid=str(uuidlib.UUID(bytes=raw_uuid)),
        name=raw_name.split(b"\0", 1)[0].decode(errors="replace"),
        raid_size=raid_size,
        block_size=block_size,
        level=level,
        strip_size=strip_size,
        num_base_bdevs=num_base,
        seq_number=seq,
        state=state,
        flags=flags,
        version_minor=minor,
        members=members,
    )


def io_size(length: int, block_size: int) -> int:
    """Bytes a superblock of `length` bytes takes on a bdev: whole blocks."""
    return -(-length // block_size) * block_size


async def load(bdev: Bdev) -> tuple[Superblock | None, int]:
    """Read the superblock at offset 0: (sb, 0), (None, -EINVAL) if there is none, (None, -EIO)."""
    size = io_size(HEADER_SIZE, bdev.block_size)
    try:
        buf = await bdev.read(0, min(size, bdev.size_bytes))
        try:
            return parse(buf), 0
        except NeedMore as more:
            size = io_size(min(more.length, MAX_LENGTH), bdev.block_size)
            buf += await bdev.read(len(buf), min(size, bdev.size_bytes) - len(buf))
            return parse(buf), 0
    except RpcError:
        return None, -EIO
    except (ValueError, NeedMore):
        return None, -EINVAL
