"""A node's devices: bringing them into SPDK at start, and telling whether they still work.

A device is an aio bdev on a file or block device (``ID=PATH``) or a bdev something else made
(``ID=bdev:NAME``, e.g. an NVMe namespace). Its uuid lives in the database: SPDK forgets
everything at restart, and an aio bdev re-created without its old uuid would not be recognised
by what was built on it. spdkvirt keeps one lvstore per device. A device that held an lvstore and
comes back without it is reported failed, never formatted again silently.
"""

from __future__ import annotations

import os
import uuid as uuidlib
from dataclasses import dataclass, replace

from spdkvirt.model import names
from spdkvirt.model.observed import Observed
from spdkvirt.model.records import Device
from spdkvirt.spdk.errors import SpdkExists
from spdkvirt.spdk.methods import Spdk

FILE_BLOCK_SIZE = 4096


class DeviceSpecError(ValueError):
    """A --device argument that is not ID=PATH or ID=bdev:NAME."""


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    path: str = ""
    bdev: str = ""
    block_size: int | None = None

    @classmethod
    def parse(cls, text: str) -> DeviceSpec:
        ident, sep, where = text.partition("=")
        if not sep or not ident or not where:
            raise DeviceSpecError(f"device {text!r}: expected ID=PATH or ID=bdev:NAME")
        if where.startswith("bdev:"):
            return cls(ident, bdev=where[len("bdev:") :])
        # SPDK cannot detect the block size of a regular file: give it one
        return cls(ident, path=where, block_size=FILE_BLOCK_SIZE if os.path.isfile(where) else None)

    @property
    def bdev_name(self) -> str:
        return self.bdev or self.device_id


async def attach(spdk: Spdk, node: str, spec: DeviceSpec, known: Device | None) -> Device:
    """Bring a device into SPDK (idempotent) and return its record as it stands now."""
    uuid = known.uuid if known is not None and known.uuid else str(uuidlib.uuid4())
    if spec.path:
        try:
            await spdk.bdev_aio_create(spec.path, spec.bdev_name, uuid=uuid, block_size=spec.block_size)
        except SpdkExists:
            pass
        await spdk.bdev_wait_for_examine()
    found = await spdk.bdev_get_bdevs(spec.bdev_name)
    bdev = found[0]
    stores = [s for s in await spdk.bdev_lvol_get_lvstores() if s.get("base_bdev") == bdev["name"]]
    base = Device(
        node, spec.device_id, bdev["name"], bdev["num_blocks"] * bdev["block_size"], bdev["block_size"],
        uuid=bdev.get("uuid", uuid),
    )  # fmt: skip
    if known is not None:
        base = replace(base, generation=known.generation, state=known.state, extra=known.extra)
    if not stores:
        if known is not None and known.lvstore:
            return replace(base, state="failed", lvstore=known.lvstore, lvstore_uuid=known.lvstore_uuid)
        name = names.lvstore(spec.device_id)
        lvs_uuid = await spdk.bdev_lvol_create_lvstore(bdev["name"], name)
        stores = [s for s in await spdk.bdev_lvol_get_lvstores() if s.get("uuid") == lvs_uuid]
    s = stores[0]
    if known is not None and known.lvstore_uuid and s["uuid"] != known.lvstore_uuid:
        return replace(base, state="failed", lvstore=known.lvstore, lvstore_uuid=known.lvstore_uuid)
    return replace(
        base, lvstore=s["name"], lvstore_uuid=s["uuid"], cluster_size=s["cluster_size"],
        free_bytes=s["free_clusters"] * s["cluster_size"],
    )  # fmt: skip


def health(device: Device, observed: Observed) -> tuple[str, str]:
    """What the observation says of a device: ("available" | "failed", reason)."""
    if device.bdev not in observed.bdevs:
        return "failed", f"bdev {device.bdev} is gone"
    lvs = observed.lvstores.get(device.lvstore)
    if device.lvstore and (lvs is None or lvs.uuid != device.lvstore_uuid):
        return "failed", f"lvstore {device.lvstore} is not loaded"
    return "available", ""


def with_space(device: Device, observed: Observed) -> Device:
    lvs = observed.lvstores.get(device.lvstore)
    if lvs is None:
        return device
    return replace(device, free_bytes=lvs.free_clusters * lvs.cluster_size)
