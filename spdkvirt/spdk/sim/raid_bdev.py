"""The raid bdev: members (slots), states, configuring/online/offline, removal, rebuild, data path.

A raid exists from bdev_raid_create (or from a superblock found by examine) until
bdev_raid_delete. It waits in `configuring` until every member it expects is there, then
registers its bdev and is `online`; a raid0/concat that loses a member goes `offline` and its
bdev unregisters, a raid1 stays online with fewer operational members. The raid's data maps
onto the members at data_offset: raid1 mirrors, raid0 stripes, concat concatenates.
"""

from __future__ import annotations

import errno
import os
import uuid as uuidlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from . import raid_sb
from .bdev import CLAIM_EXCLUSIVE_WRITE, Bdev, io_types
from .errors import EALREADY, EEXIST, EINVAL, EIO, ENODEV, EPERM, RpcError, errno_error
from .raid_process import RaidProcess
from .raid_sb import SbMember, Superblock
from .target import Target

NIL_UUID = "00000000-0000-0000-0000-000000000000"
ONLINE = "online"
CONFIGURING = "configuring"
OFFLINE = "offline"
NAME_LIMIT = raid_sb.NAME_SIZE

# the names bdev_raid_create accepts, and the level each means
LEVEL_ALIASES = {
    "raid0": "raid0",
    "0": "raid0",
    "raid1": "raid1",
    "1": "raid1",
    "raid5f": "raid5f",
    "5f": "raid5f",
    "concat": "concat",
}


@dataclass(frozen=True)
class LevelModule:
    """What a raid level allows: member count, how many may be lost, metadata formats."""

    level: str
    base_bdevs_min: int
    min_operational: int  # 0: every member is needed
    dif_supported: bool

    def min_operational_for(self, num_base_bdevs: int) -> int:
        return self.min_operational or num_base_bdevs


LEVEL_MODULES = {
    "raid0": LevelModule("raid0", 1, 0, True),
    "raid1": LevelModule("raid1", 2, 1, False),
    "concat": LevelModule("concat", 1, 0, False),
}


class RaidRegistry(Protocol):
    """What a raid needs from the module: the list of raids, process options, examine."""

    raids: list[RaidBdev]
    process_window_size_kb: int
    process_max_bandwidth_mb_sec: int

    async def examine_sb(self, target: Target, sb: Superblock, bdev: Bdev) -> int: ...


def errno_code(err: int) -> str:
    return os.strerror(-err)


def data_block_size(bdev: Bdev) -> int:
    md = int(getattr(bdev, "md_size", 0) or 0)
    return bdev.block_size - md if md and getattr(bdev, "md_interleave", False) else bdev.block_size


def metadata_format(bdev: Bdev) -> tuple[int, bool, int]:
    return (
        int(getattr(bdev, "md_size", 0) or 0),
        bool(getattr(bdev, "md_interleave", False)),
        int(getattr(bdev, "dif_type", 0) or 0),
    )


class BaseInfo:
    """One slot of a raid: the member expected or present there."""

    def __init__(self, raid: RaidBdev, slot: int) -> None:
        self.raid = raid
        self.slot = slot
        self.name: str | None = None
        self.uuid = NIL_UUID
        self.bdev: Bdev | None = None
        self.is_configured = False
        self.is_process_target = False
        self.is_failed = False
        self.remove_scheduled = False
        self.data_offset = 0
        self.data_size = 0
        self.blockcnt = 0

    # hot-remove and resize of the member (BdevUser)
    def base_removed(self, bdev: Bdev) -> Awaitable[Any]:
        return self.raid.remove_base(self)

    def base_resized(self, bdev: Bdev) -> None:
        self.raid.base_resized(self, bdev)

    @property
    def in_sync(self) -> bool:
        return self.is_configured and not self.is_process_target and not self.remove_scheduled and self.bdev is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "is_configured": self.is_configured,
            "data_offset": self.data_offset,
            "data_size": self.data_size,
        }


class RaidBdev(Bdev):
    product_name = "Raid Volume"
    module = "raid"
    has_numa_id = False

    def __init__(
        self,
        target: Target,
        registry: RaidRegistry,
        name: str,
        level: str,
        strip_size_kb: int,
        num_base_bdevs: int,
        superblock: bool,
        uuid: str,
    ) -> None:
        super().__init__(target, name, 0, 0, uuid=uuid, aliases=[])
        self.registry = registry
        self.level = level
        self.level_module = LEVEL_MODULES[level]
        self.strip_size_kb = strip_size_kb
        self.strip_size = 0
        self.superblock_enabled = superblock
        self.state = CONFIGURING
        self.base = [BaseInfo(self, i) for i in range(num_base_bdevs)]
        self.num_discovered = 0
        self.num_operational = 0
        self.min_operational = self.level_module.min_operational_for(num_base_bdevs)
        self.sb: Superblock | None = None
        self.process: RaidProcess | None = None
        self.destroy_started = False
        self.md_format: tuple[int, bool, int] = (0, False, 0)

    @property
    def num_base_bdevs(self) -> int:
        return len(self.base)

    # ---- members: open, configure, release ------------------------------------------------
    def open_base(self, base: BaseInfo) -> int:
        """Find, claim and check the member for this slot (the synchronous part of adding it)."""
        target = self.target
        if base.uuid != NIL_UUID:
            found = target.find_bdev(base.uuid)
            if found is None:
                return -ENODEV
            if base.name is None:
                base.name = found.name
            elif base.name != found.name:
                return -EINVAL
        assert base.name is not None
        bdev = target.find_bdev(base.name)
        if bdev is None or bdev.removed:
            return -ENODEV
        if bdev.claim_type is not None:
            return -EPERM  # a claimed bdev cannot be opened for writing
        if base.uuid == NIL_UUID:
            base.uuid = bdev.uuid
        elif base.uuid != bdev.uuid:
            return -EINVAL
        try:
            bdev.claim(base, CLAIM_EXCLUSIVE_WRITE)
        except RpcError as err:
            return err.code
        base.bdev = bdev
        base.blockcnt = bdev.num_blocks
        rc = self._place_base(base, bdev)
        if rc:
            self.free_base_resource(base)
        return rc

    def _place_base(self, base: BaseInfo, bdev: Bdev) -> int:
        if self.superblock_enabled:
            offset = base.data_offset or raid_sb.MIN_DATA_OFFSET_BYTES // data_block_size(bdev)
            boundary = int(getattr(bdev, "optimal_io_boundary", 0) or 0)
            if boundary:
                rounded = -(-offset // boundary) * boundary
                if not base.data_offset or base.data_offset == rounded:
                    offset = rounded
            base.data_offset = offset
        if base.data_offset >= bdev.num_blocks:
            return -EINVAL
        if base.data_size == 0:
            base.data_size = bdev.num_blocks - base.data_offset
        elif base.data_offset + base.data_size > bdev.num_blocks:
            return -EINVAL
        md = metadata_format(bdev)
        if not self.level_module.dif_supported and md[2]:
            return -EINVAL
        if self.block_size == 0:
            self.block_size = bdev.block_size
            self.md_format = md
        elif self.block_size != bdev.block_size or self.md_format != md:
            return -EINVAL
        return 0

    def free_slot_for(self, name: str) -> BaseInfo | None:
        """The slot bdev_raid_add_base_bdev puts a bdev in: reserved for its uuid, else empty."""
        slot: BaseInfo | None = None
        if self.state == CONFIGURING:
            bdev = self.target.find_bdev(name)
            if bdev is not None:
                slot = next((b for b in self.base if b.name is None and b.uuid == bdev.uuid), None)
        if slot is None or self.state == ONLINE:
            slot = next((b for b in self.base if b.name is None and b.uuid == NIL_UUID), slot)
        return slot

    async def configure_base(self, base: BaseInfo, existing: bool) -> int:
        rc = self.open_base(base)
        if rc:
            return rc
        return await self.configure_opened_base(base, existing)

    async def configure_opened_base(self, base: BaseInfo, existing: bool) -> int:
        """Continue with an opened member: check it carries no foreign superblock, then join."""
        if existing:
            return await self._join(base)
        bdev = base.bdev
        assert bdev is not None
        sb, status = await raid_sb.load(bdev)
        if status == 0:
            assert sb is not None
            if sb.uuid == self.uuid:
                self.free_base_resource(base)
                return await self.registry.examine_sb(self.target, sb, bdev)
            status = -EEXIST
        elif status == -EINVAL:
            return await self._join(base)
        self.free_base_resource(base)
        return status

    async def _join(self, base: BaseInfo) -> int:
        if self.num_discovered == self.num_operational and not base.is_process_target:
            base.is_process_target = True
        base.is_configured = True
        self.num_discovered += 1
        if self.num_discovered == self.num_operational:
            return await self.configure()
        if base.is_process_target:
            self.num_operational += 1
            await self.start_rebuild(base)
        return 0

    def deconfigure_base(self, base: BaseInfo) -> None:
        assert base.is_configured
        self.num_discovered -= 1
        base.is_configured = False
        base.is_process_target = False

    def free_base_resource(self, base: BaseInfo) -> None:
        base.name = None
        if self.state != CONFIGURING:
            base.uuid = NIL_UUID
        base.is_failed = False
        base.data_offset = 0
        bdev = base.bdev
        if bdev is None:
            return
        bdev.release(base)
        base.bdev = None
        if base.is_configured:
            self.deconfigure_base(base)

    # ---- configure: all members are there -------------------------------------------------
    def start_level(self) -> None:
        """Size the raid from its members (what each level's start does)."""
        if self.level == "raid1":
            size = min(b.data_size for b in self.base)
            for b in self.base:
                b.data_size = size
            self.num_blocks = size
        elif self.level == "raid0":
            size = min(b.data_size for b in self.base) // self.strip_size * self.strip_size
            for b in self.base:
                b.data_size = size
            self.num_blocks = size * self.num_base_bdevs
        else:
            total = 0
            for b in self.base:
                b.data_size = b.data_size // self.strip_size * self.strip_size
                total += b.data_size
            self.num_blocks = total

    async def configure(self) -> int:
        bs = self.block_size - self.md_format[0] if self.md_format[1] else self.block_size
        self.strip_size = self.strip_size_kb * 1024 // bs
        if self.strip_size == 0 and self.level != "raid1":
            return -EINVAL
        self.start_level()
        if self.superblock_enabled:
            if self.sb is None:
                self.sb = self._new_superblock(bs)
            elif self.sb.block_size != bs or self.sb.raid_size != self.num_blocks:
                return -EINVAL
            rc = await self.write_superblock()
            if rc:
                return rc
        return await self._register()

    async def _register(self) -> int:
        if self.uuid == NIL_UUID:
            self.uuid = str(uuidlib.uuid4())
        self.aliases = [self.uuid]
        self.state = ONLINE
        try:
            await self.target.register_bdev(self)
        except RpcError as err:
            self.state = CONFIGURING
            return err.code
        return 0

    def _new_superblock(self, block_size: int) -> Superblock:
        return Superblock(
            uuid=self.uuid,
            name=self.name,
            raid_size=self.num_blocks,
            block_size=block_size,
            level=raid_sb.LEVEL_CODES[self.level],
            strip_size=self.strip_size,
            num_base_bdevs=self.num_base_bdevs,
            members=[SbMember(b.uuid, b.data_offset, b.data_size, raid_sb.CONFIGURED, b.slot) for b in self.base],
        )

    async def write_superblock(self) -> int:
        """Bump the sequence number and write the superblock to every configured member."""
        sb = self.sb
        assert sb is not None
        sb.seq_number += 1
        data = sb.encode()
        return await self._write_to_members(data)

    async def clear_superblock(self) -> int:
        sb = self.sb
        assert sb is not None
        return await self._write_to_members(bytes(sb.length))

    async def _write_to_members(self, data: bytes) -> int:
        status = 0
        for b in list(self.base):
            if not b.is_configured or b.remove_scheduled or b.bdev is None:
                continue
            padded = data + bytes(raid_sb.io_size(len(data), b.bdev.block_size) - len(data))
            try:
                await b.bdev.write(0, padded)
            except RpcError:
                status = -EIO
        return status

    # ---- going offline, removal, deletion -------------------------------------------------
    async def deconfigure(self) -> None:
        if self.state != ONLINE:
            return
        self.state = OFFLINE
        process = self.process
        if process is not None:
            process.stop(-errno.ECANCELED)
            await process.done.wait()
        await self.target.unregister_bdev(self)

    async def destruct(self) -> None:
        for b in self.base:
            if b.remove_scheduled:
                self.free_base_resource(b)
        if self.state != CONFIGURING and self.num_discovered == 0:
            self.cleanup()

    def cleanup(self) -> None:
        if self in self.registry.raids:
            self.registry.raids.remove(self)

    async def remove_base(self, base: BaseInfo) -> int:
        """A member goes away (hot-remove, failure or bdev_raid_remove_base_bdev)."""
        if base.remove_scheduled or not base.is_configured:
            return -ENODEV
        base.remove_scheduled = True
        if self.state != ONLINE:
            self.free_base_resource(base)
            base.remove_scheduled = False
            if self.num_discovered == 0 and self.state == OFFLINE:
                self.cleanup()
            return 0
        if self.min_operational == self.num_base_bdevs:
            self.num_operational -= 1
            await self.deconfigure()
            return 0
        process = self.process
        if process is not None:
            operational = sum(1 for b in self.base if b.is_configured and not b.remove_scheduled)
            if base is process.target or operational <= self.min_operational:
                process.stop(-ENODEV)
                await process.done.wait()
        return await self._remove_quiesced(base)

    async def _remove_quiesced(self, base: BaseInfo) -> int:
        sb = self.sb
        if sb is not None:
            for m in sb.members:
                if m.state == raid_sb.CONFIGURED and m.slot == base.slot:
                    m.state = raid_sb.FAILED if base.is_failed else raid_sb.MISSING
                    rc = await self.write_superblock()
                    if rc:
                        base.remove_scheduled = False
                        return rc
                    break
        if base.is_configured:
            self.deconfigure_base(base)
        self.free_base_resource(base)
        base.remove_scheduled = False
        self.num_operational -= 1
        if self.num_operational < self.min_operational:
            await self.deconfigure()
        return 0

    def fail_base(self, base: BaseInfo) -> None:
        """A member returned an I/O error: take it out of the raid (in the background)."""
        if base.is_failed:
            return
        base.is_failed = True

        async def remove() -> None:
            if await self.remove_base(base):
                base.is_failed = False

        self.target.spawn(remove())

    async def delete(self, clear_sb: bool) -> int:
        if self.destroy_started:
            return -EALREADY
        self.destroy_started = True
        if self.sb is not None and clear_sb:
            await self.clear_superblock()
        for b in self.base:
            b.remove_scheduled = True
            if self.state != ONLINE:
                self.free_base_resource(b)
        if self.num_discovered == 0:
            self.cleanup()
            return 0
        await self.deconfigure()
        return 0

    # ---- rebuild ----------------------------------------------------------------------------
    async def start_rebuild(self, target: BaseInfo) -> None:
        if target.remove_scheduled or not target.is_configured or self.num_operational <= self.min_operational:
            await self.remove_base(target)
            return
        reg = self.registry
        process = RaidProcess(self, target, reg.process_window_size_kb, reg.process_max_bandwidth_mb_sec)
        self.process = process
        self.target.spawn(process.run())

    async def copy_window(self, target: BaseInfo, offset_blocks: int, num_blocks: int) -> int:
        """Copy one window of raid blocks from an in-sync member to the rebuild target."""
        bs = self.block_size
        try:
            data = await self._raid1_read(offset_blocks * bs, num_blocks * bs)
        except RpcError:
            return -EIO
        dest = target.bdev
        if dest is None:
            return -ENODEV
        try:
            await dest.write((target.data_offset + offset_blocks) * bs, data)
        except RpcError:
            return -EIO
        return 0

    async def process_finished(self, process: RaidProcess) -> None:
        self.process = None
        target = process.target
        target.is_process_target = False
        if process.status == 0:
            sb = self.sb
            if self.superblock_enabled and sb is not None:
                for m in sb.members:
                    if m.state != raid_sb.CONFIGURED and m.slot < self.num_base_bdevs:
                        b = self.base[m.slot]
                        if b.is_configured:
                            m.state = raid_sb.CONFIGURED
                            m.data_offset = b.data_offset
                            m.uuid = b.uuid
                await self.write_superblock()
        else:
            await self.remove_base(target)

    # ---- resize -------------------------------------------------------------------------------
    def base_resized(self, base: BaseInfo, bdev: Bdev) -> None:
        base.blockcnt = bdev.num_blocks
        if self.state != ONLINE or self.level == "concat":
            return
        opened = [b for b in self.base if b.bdev is not None]
        if not opened:
            return
        size = min(b.blockcnt - b.data_offset for b in opened)
        if self.level == "raid0":
            size = size // self.strip_size * self.strip_size
            blocks = size * self.num_base_bdevs
        else:
            blocks = size
        if blocks == self.num_blocks or (blocks < self.num_blocks and self.is_open):
            return
        self.resize(blocks)
        for b in self.base:
            b.data_size = size
        sb = self.sb
        if self.superblock_enabled and sb is not None:
            for m in sb.members:
                if m.slot < self.num_base_bdevs:
                    m.data_size = self.base[m.slot].data_size
            sb.raid_size = self.num_blocks
            self.target.spawn(self.write_superblock())

    # ---- data path ----------------------------------------------------------------------------
    async def do_read(self, offset: int, length: int) -> bytes:
        if self.level == "raid1":
            return await self._raid1_read(offset, length)
        parts = [await self._member_io(b, off, n, None) for b, off, n in self._map(offset, length)]
        return b"".join(p for p in parts if p is not None)

    async def do_write(self, offset: int, data: bytes) -> None:
        if self.level != "raid1":
            pos = 0
            for b, off, n in self._map(offset, len(data)):
                await self._member_io(b, off, n, data[pos : pos + n])
                pos += n
            return
        process = self.process
        if process is None:
            await self._raid1_write(offset, data, None)
            return
        async with process.lock:
            await self._raid1_write(offset, data, process)

    async def _member_io(self, base: BaseInfo, offset: int, length: int, data: bytes | None) -> bytes | None:
        bdev = base.bdev
        if bdev is None or not base.is_configured:
            raise errno_error(EIO)
        pos = base.data_offset * self.block_size + offset
        if data is None:
            return await bdev.read(pos, length)
        await bdev.write(pos, data)
        return None

    def _map(self, offset: int, length: int) -> list[tuple[BaseInfo, int, int]]:
        """Split a raid0/concat byte range into (member, offset in its data, length) pieces."""
        out: list[tuple[BaseInfo, int, int]] = []
        bs = self.block_size
        end = offset + length
        pos = offset
        if self.level == "raid0":
            strip = self.strip_size * bs
            n = self.num_base_bdevs
            while pos < end:
                index, within = divmod(pos, strip)
                count = min(strip - within, end - pos)
                out.append((self.base[index % n], (index // n) * strip + within, count))
                pos += count
            return out
        start = 0
        for b in self.base:
            size = b.data_size * bs
            if pos < end and start <= pos < start + size:
                count = min(start + size - pos, end - pos)
                out.append((b, pos - start, count))
                pos += count
            start += size
        return out

    async def _raid1_read(self, offset: int, length: int) -> bytes:
        members = [b for b in self.base if b.in_sync]
        if not members:
            raise errno_error(EIO)
        first = members[0]
        try:
            data = await self._member_io(first, offset, length, None)
            assert data is not None
            return data
        except RpcError:
            pass
        for other in members[1:]:
            try:
                data = await self._member_io(other, offset, length, None)
            except RpcError:
                continue
            assert data is not None
            try:
                await self._member_io(first, offset, length, data)
            except RpcError:
                self.fail_base(first)
            return data
        self.fail_base(first)
        raise errno_error(EIO)

    async def _raid1_write(self, offset: int, data: bytes, process: RaidProcess | None) -> None:
        done = 0
        synced = process.window_offset * self.block_size if process is not None else 0
        for b in list(self.base):
            if not b.is_configured or b.remove_scheduled or b.bdev is None:
                continue
            piece = data
            if b.is_process_target:
                if offset >= synced:
                    continue
                piece = data[: synced - offset]
            try:
                await self._member_io(b, offset, len(piece), piece)
                done += 1
            except RpcError:
                self.fail_base(b)
        if not done:
            raise errno_error(EIO)

    # ---- JSON ---------------------------------------------------------------------------------
    def info_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "uuid": self.uuid,
            "strip_size_kb": self.strip_size_kb,
            "state": self.state,
            "raid_level": self.level,
            "superblock": self.superblock_enabled,
            "num_base_bdevs": self.num_base_bdevs,
            "num_base_bdevs_discovered": self.num_discovered,
            "num_base_bdevs_operational": self.num_operational,
        }
        if self.process is not None:
            out["process"] = self.process.to_json()
        out["base_bdevs_list"] = [b.to_json() for b in self.base]
        return out

    def driver_specific(self) -> dict[str, Any]:
        return {"raid": self.info_json()}

    def memory_domains(self) -> list[dict[str, str]] | None:
        domains: list[dict[str, str]] = []
        for b in self.base:
            if b.is_configured and b.bdev is not None:
                domains += b.bdev.stacked_memory_domains()
        return domains or None

    def supported_io(self) -> dict[str, bool]:
        members = [b.bdev for b in self.base if b.bdev is not None]
        kinds = [m.supported_io() if isinstance(m, RaidBdev) else m.io for m in members]
        shared = {k: all(io.get(k, False) for io in kinds) for k in ("flush", "reset", "unmap")}
        return io_types(read=True, write=True, write_zeroes=True, **shared)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["supported_io_types"] = self.supported_io()
        return out

    def write_config_json(self) -> dict[str, Any] | None:
        """The bdev_raid_create call save_config keeps (none with a superblock: examine finds it)."""
        if self.superblock_enabled:
            return None
        params: dict[str, Any] = {"name": self.name, "uuid": self.uuid}
        if self.strip_size_kb:
            params["strip_size_kb"] = self.strip_size_kb
        params["raid_level"] = self.level
        params["base_bdevs"] = [b.name if b.name is not None else f"removed_base_bdev_{b.slot}" for b in self.base]
        return {"method": "bdev_raid_create", "params": params}


__all__ = ["LEVEL_ALIASES", "NIL_UUID", "BaseInfo", "RaidBdev", "RaidRegistry", "errno_code"]
