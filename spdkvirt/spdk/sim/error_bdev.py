"""Error-injection bdevs: bdev_error_create/inject_error/resume_pending/delete.

An error bdev `EE_<base>` wraps its base bdev (which it claims exclusive_write) and passes
every read and write through to it, unless an injected error applies: `failure` and
`nvme_failure` fail the I/O, `nomem` makes the bdev layer retry it, `corrupt_data` flips
bits in the data and `pending` holds the I/O until bdev_error_resume_pending. The
configuration (base name, uuid) is kept by base name, so a bdev_error_create for a base that
does not exist yet takes effect when that base registers (examine).
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import uuid as uuidlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from .bdev import CLAIM_EXCLUSIVE_WRITE, Bdev
from .decode import decode
from .errors import EEXIST, EINVAL, EIO, ENODEV, RpcError, errno_error
from .registry import examiner, rpc
from .target import Target

PRODUCT_NAME = "Error Injection Disk"
# The namespace spdk_bdev_part uses to derive a part's uuid from its base's uuid and range.
PART_NAMESPACE_UUID = uuidlib.UUID("976b899e-3e1e-4d71-ab69-c2b08e9df8b8")
NIL_UUID = "00000000-0000-0000-0000-000000000000"

IO_TYPES = ("read", "write", "unmap", "flush")
ERROR_TYPES = ("failure", "pending", "corrupt_data", "nomem", "nvme_failure")
# Injected errors that fail the I/O, with the io_error counter they land in.
FAILING = {"failure": "failed", "nvme_failure": "nvme_error"}


def part_uuid(base_uuid: str, offset_blocks: int, num_blocks: int) -> str:
    """The uuid SPDK gives a part bdev that was not given one (sha1 name-based, version 5)."""
    name = uuidlib.UUID(base_uuid).bytes + struct.pack("<QQ", offset_blocks, num_blocks)
    digest = hashlib.sha1(PART_NAMESPACE_UUID.bytes + name).digest()[:16]
    return str(uuidlib.UUID(bytes=digest, version=5))


@dataclass
class Injection:
    """One entry of an error bdev's error vector (one per I/O type)."""

    error_type: str = ""
    num: int = 0
    queue_depth: int = 0
    corrupt_offset: int = 0
    corrupt_value: int = 0
    nvme_sct: int = 0
    nvme_sc: int = 0


@dataclass(frozen=True)
class ErrorConfig:
    """A bdev_error_create request as SPDK keeps it: by base name, with an optional uuid."""

    base_name: str
    uuid: str | None


class IoFailed(RpcError):
    """An I/O completed with an error status (counted in the bdev's io_error statistics)."""

    def __init__(self, status: str) -> None:
        err = errno_error(EIO)
        super().__init__(err.code, err.message)
        self.io_status = status


class ErrorBdev(Bdev):
    product_name = PRODUCT_NAME
    module = "error"

    def __init__(self, target: Target, name: str, base: Bdev, uuid: str | None) -> None:
        super().__init__(
            target,
            name,
            base.num_blocks,
            base.block_size,
            uuid or part_uuid(base.uuid, 0, base.num_blocks),
        )
        self.base = base
        self.vector: dict[str, Injection] = {t: Injection() for t in IO_TYPES}
        self.held: list[asyncio.Future[None]] = []
        self.inflight = 0

    # ---- injection ------------------------------------------------------------------------
    def inject(self, io_type: str, inj: Injection) -> None:
        if io_type == "clear":
            for entry in self.vector.values():
                entry.num = 0
            return
        for t in IO_TYPES if io_type == "all" else (io_type,):
            self.vector[t] = Injection(**inj.__dict__)

    def resume_pending(self) -> None:
        for entry in self.vector.values():
            if entry.error_type == "pending":
                entry.num = 0
        held, self.held = self.held, []
        for fut in held:
            if not fut.done():
                fut.set_result(None)

    def _take(self, io_type: str) -> str:
        """The error this I/O gets (consuming one of the injected count), or "" for none."""
        entry = self.vector[io_type]
        if self.inflight < entry.queue_depth or entry.num == 0:
            return ""
        entry.num -= 1
        return entry.error_type

    async def _admit(self, io_type: str) -> str:
        """Wait out held and no-memory submissions; return the error type the I/O then gets."""
        while True:
            kind = self._take(io_type)
            if kind == "pending":
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self.held.append(fut)
                await fut
                continue
            if kind == "nomem":
                await asyncio.sleep(0.001)
                continue
            if kind in FAILING:
                raise IoFailed(FAILING[kind])
            return kind

    # ---- data path ------------------------------------------------------------------------
    async def do_read(self, offset: int, length: int) -> bytes:
        kind = await self._admit("read")
        self.inflight += 1
        try:
            data = await self.base.read(offset, length)
        finally:
            self.inflight -= 1
        if kind == "corrupt_data":
            data = _corrupt(data, self.vector["read"])
        return data

    async def do_write(self, offset: int, data: bytes) -> None:
        kind = await self._admit("write")
        if kind == "corrupt_data":
            data = _corrupt(data, self.vector["write"])
        self.inflight += 1
        try:
            await self.base.write(offset, data)
        finally:
            self.inflight -= 1

    # ---- base bdev ------------------------------------------------------------------------
    def base_removed(self, bdev: Bdev) -> Awaitable[None]:
        return self.target.unregister_bdev(self)

    async def destruct(self) -> None:
        held, self.held = self.held, []
        for fut in held:
            if not fut.done():
                fut.set_exception(IoFailed("aborted"))
        self.base.release(self)
        self.target.state(ErrorState).remove_config(self.base.name)

    # ---- JSON -----------------------------------------------------------------------------
    def extra_top_level(self) -> dict[str, Any]:
        return self.base.extra_top_level()

    def driver_specific(self) -> dict[str, Any]:
        return {"error_disk": {"base_bdev": self.base.name}}

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if not self.base.has_numa_id:
            out.pop("numa_id", None)
        io = dict(self.base.to_json()["supported_io_types"])
        for key in ("nvme_admin", "nvme_io", "nvme_io_md"):
            io[key] = False
        out["supported_io_types"] = io
        return out


def _corrupt(data: bytes, entry: Injection) -> bytes:
    if entry.corrupt_offset >= len(data):
        return data
    buf = bytearray(data)
    buf[entry.corrupt_offset] ^= entry.corrupt_value
    return bytes(buf)


class ErrorState:
    """The error module's configuration list, in bdev_error_create order."""

    def __init__(self) -> None:
        self.configs: list[ErrorConfig] = []

    def find_config(self, base_name: str) -> ErrorConfig | None:
        return next((c for c in self.configs if c.base_name == base_name), None)

    def remove_config(self, base_name: str) -> None:
        cfg = self.find_config(base_name)
        if cfg is not None:
            self.configs.remove(cfg)


async def _construct(target: Target, base_name: str, uuid: str | None) -> None:
    """Create EE_<base_name> over base_name: -19 when there is no such bdev yet."""
    base = target.get_bdev(base_name)
    bdev = ErrorBdev(target, f"EE_{base_name}", base, uuid)
    base.claim(bdev, CLAIM_EXCLUSIVE_WRITE)
    try:
        await target.register_bdev(bdev)
    except RpcError:
        base.release(bdev)
        raise


@examiner(5, "error")
async def examine(target: Target, bdev: Bdev) -> None:
    cfg = target.state(ErrorState).find_config(bdev.name)
    if cfg is None:
        return
    try:
        await _construct(target, bdev.name, cfg.uuid)
    except RpcError:
        return


@rpc("bdev_error_create")
async def bdev_error_create(target: Target, params: Any) -> Any:
    p = decode(params, {"base_name": ("str", True), "uuid": ("uuid", False)})
    base_name: str = p["base_name"]
    uuid = p.get("uuid")
    if uuid == NIL_UUID:
        uuid = None
    st = target.state(ErrorState)
    if st.find_config(base_name) is not None:
        raise errno_error(EEXIST)
    cfg = ErrorConfig(base_name, uuid)
    st.configs.append(cfg)
    try:
        await _construct(target, base_name, uuid)
    except RpcError as err:
        if err.code != -ENODEV:
            if cfg in st.configs:
                st.configs.remove(cfg)
            raise
    return True


def _error_bdev(target: Target, name: str) -> ErrorBdev:
    return target.get_bdev_of(name, ErrorBdev)


@rpc("bdev_error_inject_error")
async def bdev_error_inject_error(target: Target, params: Any) -> Any:
    p = decode(
        params,
        {
            "name": ("str", True),
            "io_type": ("io_type", True),
            "error_type": ("error_type", True),
            "nvme_sct": ("u32", False),
            "nvme_sc": ("u32", False),
            "num": ("u32", False),
            "queue_depth": ("u64", False),
            "corrupt_offset": ("u64", False),
            "corrupt_value": ("u8", False),
        },
        extra={
            "io_type": lambda v: v in ("clear", "all", *IO_TYPES),
            "error_type": lambda v: v in ERROR_TYPES,
        },
    )
    inj = Injection(
        error_type=p["error_type"],
        num=p.get("num", 1),
        queue_depth=p.get("queue_depth", 0),
        corrupt_offset=p.get("corrupt_offset", 0),
        corrupt_value=p.get("corrupt_value", 0),
        nvme_sct=p.get("nvme_sct", 0),
        nvme_sc=p.get("nvme_sc", 0),
    )
    has_status = bool(inj.nvme_sct or inj.nvme_sc)
    if (inj.error_type == "nvme_failure") != has_status:
        raise RpcError(-EINVAL, "nvme_sct or nvme_sc should be specified for NVMe error injection")
    if inj.error_type == "corrupt_data" and inj.corrupt_value == 0:
        raise errno_error(EINVAL)
    _error_bdev(target, p["name"]).inject(p["io_type"], inj)
    return True


@rpc("bdev_error_resume_pending")
async def bdev_error_resume_pending(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)})
    _error_bdev(target, p["name"]).resume_pending()
    return True


@rpc("bdev_error_delete")
async def bdev_error_delete(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)})
    await target.unregister_bdev(_error_bdev(target, p["name"]))
    return True
