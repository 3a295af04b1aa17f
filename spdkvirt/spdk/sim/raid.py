"""RAID bdevs: raid0, concat, raid1, superblocks, degrade and rebuild.

The RPCs (bdev_raid_create/delete/get_bdevs/add_base_bdev/remove_base_bdev/set_options),
the module state, and the examine hook that assembles raids from the superblocks their
members carry (the newest superblock wins; a raid waits in `configuring` for every member
that was active when it was last written). The raid itself lives in raid_bdev, its
superblock in raid_sb, rebuilds in raid_process.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from . import raid_sb
from .bdev import Bdev
from .decode import decode
from .errors import EBUSY, EEXIST, EINVAL, ENODEV, EPERM, PARSE_ERROR, RpcError
from .raid_bdev import (
    CONFIGURING,
    LEVEL_ALIASES,
    LEVEL_MODULES,
    NAME_LIMIT,
    NIL_UUID,
    ONLINE,
    BaseInfo,
    RaidBdev,
    data_block_size,
    errno_code,
    metadata_format,
)
from .raid_sb import SbMember, Superblock
from .registry import examiner, rpc
from .target import Target


class RaidState:
    """Per-target raid module state: the raids in creation order and the process options."""

    def __init__(self) -> None:
        self.raids: list[RaidBdev] = []
        self.process_window_size_kb = 1024
        self.process_max_bandwidth_mb_sec = 0

    def by_name(self, name: str) -> RaidBdev | None:
        for r in self.raids:
            if r.name == name:
                return r
        return None

    def by_uuid(self, uuid: str) -> RaidBdev | None:
        for r in self.raids:
            if r.uuid == uuid:
                return r
        return None

    async def examine_sb(self, target: Target, sb: Superblock, bdev: Bdev) -> int:
        return await examine_sb(target, sb, bdev)

    def base_of(self, bdev: Bdev) -> BaseInfo | None:
        """The slot whose open member is this bdev."""
        for r in self.raids:
            for b in r.base:
                if b.bdev is bdev:
                    return b
        return None


# ---- creating raids -------------------------------------------------------------------------
def new_raid(
    target: Target,
    name: str,
    strip_size_kb: int,
    num_base_bdevs: int,
    level: str,
    superblock: bool,
    uuid: str,
) -> RaidBdev | int:
    """Make an empty raid in `configuring` (SPDK's checks, in its order), or -errno."""
    st = target.state(RaidState)
    if len(name.encode()) >= NAME_LIMIT:
        return -EINVAL
    if st.by_name(name) is not None:
        return -EEXIST
    if level == "raid1":
        if strip_size_kb != 0:
            return -EINVAL
    elif strip_size_kb <= 0 or strip_size_kb & (strip_size_kb - 1):
        return -EINVAL
    module = LEVEL_MODULES.get(level)
    if module is None or num_base_bdevs < module.base_bdevs_min or num_base_bdevs > 255:
        return -EINVAL
    raid = RaidBdev(target, st, name, level, strip_size_kb, num_base_bdevs, superblock, uuid)
    st.raids.append(raid)
    return raid


async def create_raid(
    target: Target,
    name: str,
    strip_size_kb: int,
    base_names: list[str],
    level: str,
    superblock: bool,
    uuid: str | None,
) -> int:
    """bdev_raid_create: 0 when the raid exists (online, or configuring for missing members)."""
    raid = new_raid(target, name, strip_size_kb, len(base_names), level, superblock, uuid or NIL_UUID)
    if isinstance(raid, int):
        return raid
    if superblock and raid.uuid == NIL_UUID:
        raid.uuid = str(uuidlib.uuid4())
    raid.num_operational = len(base_names)
    for b, bname in zip(raid.base, base_names, strict=True):
        b.name = bname
    status = 0
    for b in raid.base:
        rc = await raid.configure_base(b, existing=False)
        if rc == -ENODEV:
            continue
        if rc:
            status = rc
            break
    if status:
        await raid.delete(clear_sb=True)
    return status


def create_from_sb(target: Target, sb: Superblock) -> RaidBdev | int:
    level = raid_sb.LEVEL_NAMES.get(sb.level, "")
    raid = new_raid(target, sb.name, sb.strip_size * sb.block_size // 1024, sb.num_base_bdevs, level, True, sb.uuid)
    if isinstance(raid, int):
        return raid
    raid.sb = sb.copy()
    for m in sb.members:
        b = raid.base[m.slot]
        if m.state == raid_sb.CONFIGURED:
            b.uuid = m.uuid
            raid.num_operational += 1
        b.data_offset = m.data_offset
        b.data_size = m.data_size
    return raid


# ---- examine: assembling raids from what members carry -------------------------------------------
async def examine(target: Target, bdev: Bdev) -> None:
    st = target.state(RaidState)
    if st.base_of(bdev) is not None:
        return
    if metadata_format(bdev)[2]:
        await examine_no_sb(target, bdev)
        return
    sb, status = await raid_sb.load(bdev)
    if status == 0:
        assert sb is not None
        await examine_sb(target, sb, bdev)
    elif status == -EINVAL:
        await examine_no_sb(target, bdev)


async def examine_no_sb(target: Target, bdev: Bdev) -> None:
    """A bdev without a superblock may be a missing member of a raid that has none."""
    for raid in list(target.state(RaidState).raids):
        if raid.state != CONFIGURING or raid.sb is not None:
            continue
        for b in raid.base:
            if b.bdev is None and ((b.name is not None and b.name == bdev.name) or b.uuid == bdev.uuid):
                await raid.configure_base(b, existing=True)
                break


async def examine_sb(target: Target, sb: Superblock, bdev: Bdev) -> int:
    """Join the bdev to the raid its superblock describes (creating or rebuilding that raid)."""
    st = target.state(RaidState)
    if sb.block_size != data_block_size(bdev) or sb.uuid == NIL_UUID:
        return -EINVAL
    raid = st.by_uuid(sb.uuid)
    if raid is not None:
        current = raid.sb
        if current is None:
            return -EINVAL
        if sb.seq_number > current.seq_number:
            if raid.state != CONFIGURING:
                return -EBUSY
            await raid.delete(clear_sb=False)
            raid = None
        elif sb.seq_number < current.seq_number:
            sb = current
    member = sb.member_by_uuid(bdev.uuid)
    if member is None:
        return -EINVAL
    created = False
    if raid is None:
        made = create_from_sb(target, sb)
        if isinstance(made, int):
            return made
        raid, created = made, True
    rc = await _join_from_sb(raid, member, bdev)
    if created:
        rc = await _examine_others(target, raid.uuid, rc)
    return rc


async def _join_from_sb(raid: RaidBdev, member: SbMember, bdev: Bdev) -> int:
    if raid.state == ONLINE:
        base = raid.base[member.slot]
        if base.is_configured or member.state not in (raid_sb.MISSING, raid_sb.FAILED):
            return -EINVAL
        base.uuid = member.uuid
    else:
        if member.state != raid_sb.CONFIGURED:
            return -EINVAL
        found = next((b for b in raid.base if b.uuid == bdev.uuid), None)
        if found is None:
            return -EINVAL
        if found.is_configured:
            return -EEXIST
        base = found
    return await raid.configure_base(base, existing=True)


async def _examine_others(target: Target, raid_uuid: str, status: int) -> int:
    """After a raid was made from a superblock, take in its other members already present."""
    start = 0
    while True:
        if status not in (0, -EEXIST):
            return status
        raid = target.state(RaidState).by_uuid(raid_uuid)
        if raid is None:
            return -ENODEV
        for b in raid.base[start:]:
            if b.is_configured or b.uuid == NIL_UUID:
                continue
            other = target.find_bdev(b.uuid)
            if other is None:
                continue
            start = b.slot + 1
            sb, rc = await raid_sb.load(other)
            if rc:
                return rc
            assert sb is not None
            status = await examine_sb(target, sb, other)
            break
        else:
            return status


CATEGORIES = ("online", "configuring", "offline", "all")
MAX_BASE_BDEVS = 255


def _is_level(v: Any) -> bool:
    return isinstance(v, str) and v in LEVEL_ALIASES


def _is_category(v: Any) -> bool:
    return isinstance(v, str) and v in CATEGORIES


def _is_base_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) <= MAX_BASE_BDEVS and all(isinstance(x, str) and "\x00" not in x for x in v)


CREATE_SPEC: dict[str, tuple[str, bool]] = {
    "name": ("str", True),
    "strip_size_kb": ("u32", False),
    "raid_level": ("raid_level", True),
    "base_bdevs": ("base_bdevs", True),
    "uuid": ("uuid", False),
    "superblock": ("bool", False),
}
EXTRA_TYPES = {"raid_level": _is_level, "category": _is_category, "base_bdevs": _is_base_list}


def _failed(code: int, what: str) -> RpcError:
    return RpcError(code, f"{what}: {errno_code(code)}")


@rpc("bdev_raid_create")
async def bdev_raid_create(target: Target, params: Any) -> Any:
    p = decode(params, CREATE_SPEC, code=PARSE_ERROR, extra=EXTRA_TYPES)
    bases: list[str] = p["base_bdevs"]
    if any(not b for b in bases):
        raise _failed(-EINVAL, "The base bdev name cannot be empty")
    uuid = p.get("uuid")
    rc = await create_raid(
        target,
        p["name"],
        p.get("strip_size_kb", 0),
        bases,
        LEVEL_ALIASES[p["raid_level"]],
        p.get("superblock", False),
        uuid.lower() if uuid else None,
    )
    if rc:
        raise _failed(rc, f"Failed to create RAID bdev {p['name']}")
    return True


@rpc("bdev_raid_get_bdevs")
async def bdev_raid_get_bdevs(target: Target, params: Any) -> Any:
    p = decode(params, {"category": ("category", True)}, code=PARSE_ERROR, extra=EXTRA_TYPES)
    category = p["category"]
    out = []
    for raid in target.state(RaidState).raids:
        if category in ("all", raid.state):
            out.append({"name": raid.name, **raid.info_json()})
    return out


@rpc("bdev_raid_delete")
async def bdev_raid_delete(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True), "clear_sb": ("bool", False)}, code=PARSE_ERROR)
    raid = target.state(RaidState).by_name(p["name"])
    if raid is None:
        raise RpcError(-ENODEV, f"raid bdev {p['name']} not found")
    rc = await raid.delete(p.get("clear_sb", False))
    if rc:
        raise RpcError(-32603, errno_code(rc))
    return True


@rpc("bdev_raid_add_base_bdev")
async def bdev_raid_add_base_bdev(target: Target, params: Any) -> Any:
    p = decode(params, {"base_bdev": ("str", True), "raid_bdev": ("str", True)})
    name, raid_name = p["base_bdev"], p["raid_bdev"]
    raid = target.state(RaidState).by_name(raid_name)
    if raid is None:
        raise RpcError(-ENODEV, f"raid bdev {raid_name} is not found in config")
    slot = None if raid.process is not None else raid.free_slot_for(name)
    if raid.process is not None:
        rc = -EPERM
    elif slot is None:
        rc = -EINVAL
    else:
        slot.name = name
        rc = raid.open_base(slot)
        if rc and (rc != -ENODEV or raid.state != CONFIGURING):
            slot.name = None
    if rc or slot is None:
        raise _failed(rc, f"Failed to add base bdev {name} to RAID bdev {raid_name}")
    status = await raid.configure_opened_base(slot, existing=False)
    if status:
        raise _failed(status, "Failed to add base bdev to RAID bdev")
    return True


@rpc("bdev_raid_remove_base_bdev")
async def bdev_raid_remove_base_bdev(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)}, code=PARSE_ERROR)
    message = "Failed to remove base bdev from raid bdev"
    bdev = target.find_bdev(p["name"])
    if bdev is None:
        raise RpcError(-ENODEV, message)
    base = target.state(RaidState).base_of(bdev)
    rc = -ENODEV if base is None else await base.raid.remove_base(base)
    if rc:
        raise RpcError(rc, message)
    return True


@rpc("bdev_raid_set_options")
async def bdev_raid_set_options(target: Target, params: Any) -> Any:
    st = target.state(RaidState)
    window, bandwidth = st.process_window_size_kb, st.process_max_bandwidth_mb_sec
    if params is not None:
        p = decode(
            params,
            {"process_window_size_kb": ("u32", False), "process_max_bandwidth_mb_sec": ("u32", False)},
            code=PARSE_ERROR,
        )
        window = p.get("process_window_size_kb", window)
        bandwidth = p.get("process_max_bandwidth_mb_sec", bandwidth)
    if window == 0:
        raise RpcError(-EINVAL, errno_code(-EINVAL))
    st.process_window_size_kb, st.process_max_bandwidth_mb_sec = window, bandwidth
    return True


@examiner(10, "raid")
async def raid_examine(target: Target, bdev: Bdev) -> None:
    await examine(target, bdev)


__all__ = ["NIL_UUID", "RaidState"]
