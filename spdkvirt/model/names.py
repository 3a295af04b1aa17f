"""The names spdkvirt gives to the objects it makes inside SPDK, in one place.

Everything spdkvirt creates carries one of these prefixes, so a node agent can tell its own
objects (to be reconciled, or removed when nothing wants them) from anything an operator made by
hand (never touched).
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib

NQN_BASE = "nqn.2026-11.io.spdkvirt"
RAID_PREFIX = "vr-"
HOLD_PREFIX = "EE_"
LUN_PREFIX = "vl-"
REMOTE_PREFIX = "rl-"
LVSTORE_PREFIX = "lvs_"
LEG_NQN_PREFIX = f"{NQN_BASE}:leg:"
VOLUME_NQN_PREFIX = f"{NQN_BASE}:vol:"
NODE_NQN_PREFIX = f"{NQN_BASE}:node:"
IQN_BASE = "iqn.2026-11.io.spdkvirt"
#: the portal group spdkvirt keeps on every node; initiator and auth groups of exports start above it
PORTAL_GROUP = 1000


def lvstore(device_id: str) -> str:
    """The lvstore spdkvirt keeps on a device."""
    return LVSTORE_PREFIX + device_id


def lvol_alias(lvstore_name: str, leg_id: str) -> str:
    """The ``lvstore/lvol`` alias SPDK gives the lvol of a leg."""
    return f"{lvstore_name}/{leg_id}"


def raid(volume: str) -> str:
    """The raid bdev that assembles a volume's legs on its owner."""
    return RAID_PREFIX + volume


def hold(volume: str) -> str:
    """The error bdev over the raid: host I/O passes through it and is held there during quiescence.

    SPDK names an error bdev ``EE_`` + the name of its base."""
    return HOLD_PREFIX + raid(volume)


def lun(volume: str) -> str:
    """The passthru bdev over the hold that a volume's iSCSI LUN opens.

    SPDK's error bdev is a bdev_part: a read that comes without a buffer (iSCSI's do) gets one
    from the bdev below, and bdev_part frees that I/O, and so the buffer, before the iSCSI layer
    has sent the data (the iobuf free list then overwrites its first 8 bytes). A passthru takes
    the buffer for its own I/O, which lives until iSCSI is done with it. NVMe-oF brings its own
    buffers and uses the hold directly."""
    return LUN_PREFIX + volume


def volume_of_lun(name: str) -> str | None:
    return name[len(LUN_PREFIX) :] if name.startswith(LUN_PREFIX) else None


def volume_of_raid(name: str) -> str | None:
    return name[len(RAID_PREFIX) :] if name.startswith(RAID_PREFIX) else None


def volume_of_hold(name: str) -> str | None:
    return volume_of_raid(name[len(HOLD_PREFIX) :]) if name.startswith(HOLD_PREFIX) else None


def node_nqn(node_id: str) -> str:
    """The host NQN a node uses when it attaches the legs of the volumes it owns."""
    return NODE_NQN_PREFIX + node_id


def leg_nqn(leg_id: str, incarnation: int) -> str:
    """The subsystem exporting one incarnation of a leg to its volume's owner.

    A new incarnation gets a new NQN, so a controller attached to an old one can never reconnect
    to the lvol of a new one without the owner knowing."""
    return f"{LEG_NQN_PREFIX}{leg_id}:{incarnation}"


def leg_of_nqn(nqn: str) -> tuple[str, int] | None:
    if not nqn.startswith(LEG_NQN_PREFIX):
        return None
    leg_id, _, inc = nqn[len(LEG_NQN_PREFIX) :].rpartition(":")
    return (leg_id, int(inc)) if leg_id and inc.isdigit() else None


def remote_controller(leg_id: str, incarnation: int) -> str:
    """The bdev_nvme controller through which the owner reaches a remote leg."""
    return f"{REMOTE_PREFIX}{leg_id}-{incarnation}"


def remote_bdev(leg_id: str, incarnation: int) -> str:
    """The bdev of namespace 1 of that controller."""
    return remote_controller(leg_id, incarnation) + "n1"


def leg_identity(volume_uuid: str, leg_id: str, incarnation: int) -> str:
    """The namespace UUID (and, as hex, NGUID) of one incarnation of a leg's export."""
    digest = hashlib.sha256(f"{volume_uuid}/{leg_id}/{incarnation}".encode()).digest()
    return str(uuidlib.UUID(bytes=digest[:16], version=4))


def nguid(identity: str) -> str:
    return uuidlib.UUID(identity).hex.upper()


def volume_nqn(volume: str) -> str:
    """The subsystem hosts connect to for a volume; the same on whichever node owns it."""
    return VOLUME_NQN_PREFIX + volume


def volume_iqn(volume: str) -> str:
    """The iSCSI target node hosts log in to for a volume; the same on whichever node owns it."""
    return f"{IQN_BASE}:{volume}"
