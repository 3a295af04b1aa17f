"""Passthru bdevs: bdev_passthru_create/delete (SPDK's module/bdev/passthru).

A passthru bdev opens its base for writing and claims it exclusive_write, then passes every I/O
through. SPDK keeps the (base, name, uuid) association on a list first and registers the bdev
when the base is there, now or at examine; the association goes only with a successful
bdev_passthru_delete. So a create whose open or claim failed still holds its name (-17 on the
next create), and a passthru whose base was hot-removed has none to come back with.
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from .bdev import CLAIM_EXCLUSIVE_WRITE, Bdev
from .decode import decode
from .errors import EEXIST, ENODEV, EPERM, RpcError, errno_error
from .registry import examiner, rpc
from .target import Target

PRODUCT_NAME = "passthru"
NAMESPACE = uuidlib.UUID("7e25812e-c8c0-4d3f-8599-16d790555b85")
NIL_UUID = "00000000-0000-0000-0000-000000000000"


def derived_uuid(base_uuid: str) -> str:
    """spdk_uuid_generate_sha1(namespace, base uuid bytes): the uuid of a passthru given none."""
    digest = hashlib.sha1(NAMESPACE.bytes + uuidlib.UUID(base_uuid).bytes).digest()[:16]
    return str(uuidlib.UUID(bytes=digest, version=5))


@dataclass(frozen=True)
class Association:
    base_name: str
    name: str
    uuid: str | None


class PassthruState:
    """g_bdev_names: every association made by bdev_passthru_create, in order."""

    def __init__(self) -> None:
        self.names: list[Association] = []
        self.nodes: list[PassthruBdev] = []  # g_pt_nodes: the registered ones, in order


class PassthruBdev(Bdev):
    product_name = PRODUCT_NAME
    module = "passthru"

    def __init__(self, target: Target, assoc: Association, base: Bdev) -> None:
        super().__init__(target, assoc.name, base.num_blocks, base.block_size, assoc.uuid or derived_uuid(base.uuid))
        self.base = base
        self.has_numa_id = base.has_numa_id  # type: ignore[misc]

    async def do_read(self, offset: int, length: int) -> bytes:
        return await self.base.read(offset, length)

    async def do_write(self, offset: int, data: bytes) -> None:
        await self.base.write(offset, data)

    def base_removed(self, bdev: Bdev) -> Awaitable[None]:
        return self.target.unregister_bdev(self)

    async def destruct(self) -> None:
        self.base.release(self)
        self.base.close(self)
        st = self.target.state(PassthruState)
        if self in st.nodes:
            st.nodes.remove(self)

    def extra_top_level(self) -> dict[str, Any]:
        return self.base.extra_top_level()

    def memory_domains(self) -> list[dict[str, str]] | None:
        return self.base.memory_domains()

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        base = self.base.to_json()
        out["supported_io_types"] = base["supported_io_types"]  # io_type_supported asks the base
        if "numa_id" in base:
            out["numa_id"] = base["numa_id"]
        return out

    def driver_specific(self) -> dict[str, Any]:
        return {"passthru": {"name": self.name, "base_bdev_name": self.base.name}}


def config_entries(target: Target) -> list[dict[str, Any]]:
    """The module's save_config entries, first of the bdev modules': one per registered passthru."""
    return [
        {"method": "bdev_passthru_create",
         "params": {"base_bdev_name": n.base.name, "name": n.name, "uuid": n.uuid}}
        for n in target.state(PassthruState).nodes
    ]  # fmt: skip


async def _register(target: Target, base_name: str) -> None:
    """vbdev_passthru_register: make every passthru associated with base_name (-19: no base)."""
    st = target.state(PassthruState)
    for assoc in [a for a in st.names if a.base_name == base_name]:
        base = target.find_bdev(base_name)
        if base is None or base.removed:
            raise errno_error(ENODEV)
        if base.claim_type is not None:
            raise errno_error(EPERM)
        bdev = PassthruBdev(target, assoc, base)
        base.open(bdev)
        base.claim(bdev, CLAIM_EXCLUSIVE_WRITE)
        st.nodes.append(bdev)
        try:
            await target.register_bdev(bdev)
        except RpcError:
            st.nodes.remove(bdev)
            base.release(bdev)
            base.close(bdev)
            raise


@examiner(6, "passthru")
async def examine(target: Target, bdev: Bdev) -> None:
    try:
        await _register(target, bdev.name)
    except RpcError:
        return


@rpc("bdev_passthru_create")
async def bdev_passthru_create(target: Target, params: Any) -> Any:
    p = decode(params, {"base_bdev_name": ("str", True), "name": ("str", True), "uuid": ("uuid", False)})
    st = target.state(PassthruState)
    name: str = p["name"]
    if any(a.name == name for a in st.names):
        raise errno_error(EEXIST)
    uuid = p.get("uuid")
    st.names.append(Association(p["base_bdev_name"], name, None if uuid in (None, NIL_UUID) else uuid))
    try:
        await _register(target, p["base_bdev_name"])
    except RpcError as err:
        if err.code != -ENODEV:
            raise
    return name


@rpc("bdev_passthru_delete")
async def bdev_passthru_delete(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)})
    bdev = target.find_bdev(p["name"])  # by name or alias (spdk_bdev_unregister_by_name)
    if not isinstance(bdev, PassthruBdev):
        raise errno_error(ENODEV)
    await target.unregister_bdev(bdev)
    st = target.state(PassthruState)  # the association goes only when it was named by its name
    st.names = [a for a in st.names if a.name != p["name"]]
    return True
