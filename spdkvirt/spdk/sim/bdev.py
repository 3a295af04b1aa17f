"""The bdev layer: a block device with SPDK's JSON shape, claims, hot-remove and a data path.

Every bdev module (malloc, null, aio, lvol, raid, error, nvme) subclasses Bdev. The data path
is real enough to carry metadata: raid superblocks and lvstore metadata are written through it,
so they land inside aio files and survive a restart, as in SPDK.
"""

from __future__ import annotations

import copy
import uuid as uuidlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .errors import EIO, EPERM, RpcError, errno_error

if TYPE_CHECKING:
    from .target import Target

CLAIM_EXCLUSIVE_WRITE = "exclusive_write"
CLAIM_READ_MANY_WRITE_ONE = "read_many_write_one"
CLAIM_READ_MANY_WRITE_MANY = "read_many_write_many"
CLAIM_READ_MANY_WRITE_NONE = "read_many_write_none"

IO_TYPE_KEYS = (
    "read",
    "write",
    "unmap",
    "flush",
    "reset",
    "nvme_admin",
    "nvme_io",
    "nvme_io_md",
    "write_zeroes",
    "zcopy",
    "get_zone_info",
    "zone_management",
    "zone_append",
    "compare",
    "compare_and_write",
    "abort",
    "seek_hole",
    "seek_data",
    "copy",
    "nvme_iov_md",
    "nvme_nssr",
    "write_uncorrectable",
)


def io_types(**enabled: bool) -> dict[str, bool]:
    """SPDK's supported_io_types object: every key, False unless named True."""
    unknown = set(enabled) - set(IO_TYPE_KEYS)
    assert not unknown, unknown
    return {k: bool(enabled.get(k, False)) for k in IO_TYPE_KEYS}


class BdevUser(Protocol):
    """Something that holds a claim on (or has opened) a bdev and must hear of its removal.

    base_removed may return an awaitable: the bdev is unregistered only once it is done (as
    SPDK completes an unregister only after every descriptor is closed). A user may also
    define base_resized(bdev), called after the bdev's size changed.
    """

    def base_removed(self, bdev: Bdev) -> Awaitable[Any] | None: ...


class Bdev:
    """One registered bdev. Subclasses set product_name and io, and implement the data path."""

    product_name: ClassVar[str] = "Bdev"
    module: ClassVar[str] = "bdev"
    io: ClassVar[dict[str, bool]] = io_types(read=True, write=True)
    has_numa_id: ClassVar[bool] = True

    def __init__(
        self,
        target: Target,
        name: str,
        num_blocks: int,
        block_size: int,
        uuid: str | None = None,
        aliases: list[str] | None = None,
    ) -> None:
        self.target = target
        self.name = name
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.uuid = (uuid or str(uuidlib.uuid4())).lower()  # SPDK formats uuids in lower case
        self.aliases: list[str] = list(aliases) if aliases is not None else [self.uuid]
        self.claim_type: str | None = None
        self.claimers: list[BdevUser] = []
        self.openers: list[BdevUser] = []
        self.watchers: list[BdevUser] = []  # opened without an I/O channel (not "open" for QoS)
        self.qos: dict[str, int] = {
            "rw_ios_per_sec": 0,
            "rw_mbytes_per_sec": 0,
            "r_mbytes_per_sec": 0,
            "w_mbytes_per_sec": 0,
        }
        self.qos_set_once = False
        self.stats = IoStats()
        self.removed = False
        self.failed = False  # sim_bdev_fail: I/O errors until restored

    # ---- identity -------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [self.name, *self.aliases]

    @property
    def size_bytes(self) -> int:
        return self.num_blocks * self.block_size

    # ---- claims ---------------------------------------------------------------------------
    def claim(self, user: BdevUser, claim_type: str = CLAIM_EXCLUSIVE_WRITE) -> None:
        """Take a claim; SPDK answers -1 (EPERM) when the bdev is already claimed."""
        if self.claim_type is not None:
            shared = claim_type == self.claim_type and claim_type != CLAIM_EXCLUSIVE_WRITE
            if not shared:
                raise errno_error(EPERM)
        self.claim_type = claim_type
        self.claimers.append(user)

    def release(self, user: BdevUser) -> None:
        if user in self.claimers:
            self.claimers.remove(user)
        if not self.claimers:
            self.claim_type = None

    def open(self, user: BdevUser) -> None:
        self.openers.append(user)

    def close(self, user: BdevUser) -> None:
        if user in self.openers:
            self.openers.remove(user)

    def watch(self, user: BdevUser) -> None:
        """Open without an I/O channel (an iSCSI LUN before any login): hears of removal only."""
        self.watchers.append(user)

    def unwatch(self, user: BdevUser) -> None:
        if user in self.watchers:
            self.watchers.remove(user)

    @property
    def is_open(self) -> bool:
        return bool(self.openers or self.claimers)

    def users(self) -> list[BdevUser]:
        seen: list[BdevUser] = []
        for u in [*self.claimers, *self.openers, *self.watchers]:
            if u not in seen:
                seen.append(u)
        return seen

    # ---- data path ------------------------------------------------------------------------
    async def read(self, offset: int, length: int) -> bytes:
        self._check_io(offset, length)
        try:
            data = await self.do_read(offset, length)
        except RpcError as err:
            self.stats.count_error(getattr(err, "io_status", "failed"))
            raise
        self.stats.count_read(length, self.block_size)
        return data

    async def write(self, offset: int, data: bytes) -> None:
        self._check_io(offset, len(data))
        try:
            await self.do_write(offset, data)
        except RpcError as err:
            self.stats.count_error(getattr(err, "io_status", "failed"))
            raise
        self.stats.count_write(len(data), self.block_size)

    def _check_io(self, offset: int, length: int) -> None:
        if self.failed or self.removed:
            raise errno_error(EIO)
        if offset < 0 or offset + length > self.size_bytes:
            raise errno_error(EIO)

    async def do_read(self, offset: int, length: int) -> bytes:
        return bytes(length)

    async def do_write(self, offset: int, data: bytes) -> None:
        return None

    # ---- lifecycle hooks ------------------------------------------------------------------
    async def destruct(self) -> None:
        """Release whatever the bdev holds (base bdev claims, files). Called on unregister."""

    def revive(self) -> Bdev:
        """The same device coming back after sim_bdev_fail: fresh claims, same data and uuid."""
        self.removed = False
        self.failed = False
        self.claim_type = None
        self.claimers = []
        self.openers = []
        self.watchers = []
        return self

    def resize(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self.target.notify("bdev_resize", self.name)
        for user in self.users():
            resized = getattr(user, "base_resized", None)
            if resized is not None:
                resized(self)

    # ---- JSON -----------------------------------------------------------------------------
    def driver_specific(self) -> dict[str, Any]:
        return {}

    def memory_domains(self) -> list[dict[str, str]] | None:
        """None when the bdev reports no memory domains (the key is then omitted)."""
        return None

    def stacked_memory_domains(self) -> list[dict[str, str]]:
        """The memory domains a bdev stacked on this one (a raid) inherits from it."""
        return list(self.memory_domains() or [])

    def layout(self) -> dict[str, int]:
        return {
            "preferred_write_alignment": 0,
            "preferred_write_granularity": 0,
            "optimal_write_size": 0,
            "preferred_unmap_alignment": 0,
            "preferred_unmap_granularity": 0,
        }

    def extra_top_level(self) -> dict[str, Any]:
        """Keys some modules add between num_blocks and uuid (md_size, dif_type...)."""
        return {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "aliases": list(self.aliases),
            "product_name": self.product_name,
            "block_size": self.block_size,
            "num_blocks": self.num_blocks,
        }
        out.update(self.layout())
        out["uuid"] = self.uuid
        out.update(self.extra_top_level())
        if self.has_numa_id:
            out["numa_id"] = -1
        out["assigned_rate_limits"] = dict(self.qos)
        out["claimed"] = self.claim_type is not None
        if self.claim_type is not None:
            out["claim_type"] = self.claim_type
        out["zoned"] = False
        out["supported_io_types"] = dict(self.io)
        domains = self.memory_domains()
        if domains is not None:
            out["memory_domains"] = copy.deepcopy(domains)
        out["driver_specific"] = self.driver_specific()
        return out


class IoStats:
    """Counters for bdev_get_iostat (all volatile in comparisons, but kept plausible)."""

    def __init__(self) -> None:
        self.bytes_read = 0
        self.num_read_ops = 0
        self.bytes_written = 0
        self.num_write_ops = 0
        self.bytes_unmapped = 0
        self.num_unmap_ops = 0
        self.bytes_copied = 0
        self.num_copy_ops = 0
        self.io_error: dict[str, int] = {}  # I/O status name ("failed", "nvme_error"...) -> count

    def count_read(self, length: int, block_size: int) -> None:
        self.bytes_read += length
        self.num_read_ops += 1

    def count_write(self, length: int, block_size: int) -> None:
        self.bytes_written += length
        self.num_write_ops += 1

    def count_error(self, status: str) -> None:
        self.io_error[status] = self.io_error.get(status, 0) + 1

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


class SparseBuffer:
    """Memory that costs nothing until written: chunks allocated on first write."""

    CHUNK = 64 * 1024

    def __init__(self) -> None:
        self.chunks: dict[int, bytearray] = {}

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        pos = 0
        while pos < length:
            idx, off = divmod(offset + pos, self.CHUNK)
            n = min(self.CHUNK - off, length - pos)
            chunk = self.chunks.get(idx)
            if chunk is not None:
                out[pos : pos + n] = chunk[off : off + n]
            pos += n
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        pos = 0
        length = len(data)
        while pos < length:
            idx, off = divmod(offset + pos, self.CHUNK)
            n = min(self.CHUNK - off, length - pos)
            chunk = self.chunks.get(idx)
            if chunk is None:
                if not any(data[pos : pos + n]):
                    pos += n
                    continue
                chunk = self.chunks[idx] = bytearray(self.CHUNK)
            chunk[off : off + n] = data[pos : pos + n]
            pos += n

    def truncate(self, size: int) -> None:
        for idx in [i for i in self.chunks if i * self.CHUNK >= size]:
            del self.chunks[idx]
