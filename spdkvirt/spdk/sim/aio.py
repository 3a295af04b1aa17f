"""AIO bdevs over real files: bdev_aio_create/delete/rescan.

The data path is plain pread/pwrite on the file, so whatever other modules write through an
aio bdev (raid superblocks, lvstore metadata, lvol data) lands in the file and survives a
restart of the simulator.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import struct
from typing import Any

from .bdev import Bdev, io_types
from .decode import decode
from .errors import EBUSY, EINVAL, EIO, ENOTSUP, RpcError, errno_error
from .registry import rpc
from .target import Target


class AioBdev(Bdev):
    product_name = "AIO disk"
    module = "aio"
    has_numa_id = False
    io = io_types(read=True, write=True, flush=True, reset=True, write_zeroes=True)

    def __init__(
        self,
        target: Target,
        name: str,
        *,
        filename: str,
        fd: int,
        num_blocks: int,
        block_size: int,
        uuid: str | None,
        block_size_override: bool,
        readonly: bool,
        fallocate: bool,
    ) -> None:
        super().__init__(target, name, num_blocks, block_size, uuid)
        self.filename = filename
        self.fd = fd
        self.block_size_override = block_size_override
        self.readonly = readonly
        self.fallocate = fallocate

    # ---- data path ------------------------------------------------------------------------
    async def do_read(self, offset: int, length: int) -> bytes:
        try:
            data = os.pread(self.fd, length, offset)
        except OSError as e:
            raise errno_error(EIO) from e
        if len(data) < length:
            raise errno_error(EIO)  # a short read (the file shrank under the bdev) fails the I/O
        return data

    async def do_write(self, offset: int, data: bytes) -> None:
        if self.readonly:
            raise errno_error(EIO)
        try:
            done = 0
            while done < len(data):
                done += os.pwrite(self.fd, data[done:], offset + done)
        except OSError as e:
            raise errno_error(EIO) from e

    def file_size(self) -> int:
        try:
            return _fd_size(self.fd)
        except OSError:
            return 0

    # ---- lifecycle ------------------------------------------------------------------------
    async def destruct(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def revive(self) -> Bdev:
        super().revive()
        self._close()
        try:
            self.fd = _open(self.filename, self.readonly)
        except RpcError:
            self.failed = True
        return self

    # ---- JSON -----------------------------------------------------------------------------
    def driver_specific(self) -> dict[str, Any]:
        return {
            "aio": {
                "filename": self.filename,
                "block_size_override": self.block_size_override,
                "readonly": self.readonly,
                "fallocate": self.fallocate,
                "nowait": False,
            }
        }

    def write_config_json(self) -> dict[str, Any]:
        """The bdev_aio_create call framework_get_config saves for this bdev."""
        params: dict[str, Any] = {"name": self.name}
        if self.block_size_override:
            params["block_size"] = self.block_size
        params.update(
            filename=self.filename,
            readonly=self.readonly,
            fallocate=self.fallocate,
            uuid=self.uuid,
            nowait=False,
        )
        return {"method": "bdev_aio_create", "params": params}


class AioFallocateBdev(AioBdev):
    """An aio bdev created with fallocate: true, which also supports unmap."""

    io = io_types(read=True, write=True, flush=True, reset=True, write_zeroes=True, unmap=True)


BLKSSZGET = 0x1268


def _open(filename: str, readonly: bool) -> int:
    """open() as bdev_aio does (O_RDWR unless read-only); failures are -errno."""
    try:
        return os.open(filename, os.O_RDONLY if readonly else os.O_RDWR)
    except OSError as e:
        raise errno_error(e.errno or EIO) from e


def _detected_block_size(fd: int) -> int:
    """Regular files have no detectable block size; block devices report their logical one."""
    st = os.fstat(fd)
    if not stat.S_ISBLK(st.st_mode):
        return 0
    try:
        buf = fcntl.ioctl(fd, BLKSSZGET, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("I", buf)[0])


def _fd_size(fd: int) -> int:
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        return os.lseek(fd, 0, os.SEEK_END)
    return st.st_size


AIO_CREATE_SPEC: dict[str, tuple[str, bool]] = {
    "name": ("str", True),
    "filename": ("str", True),
    "block_size": ("u32", False),
    "readonly": ("bool", False),
    "fallocate": ("bool", False),
    "uuid": ("uuid", False),
    "nowait": ("bool", False),
}


@rpc("bdev_aio_create")
async def bdev_aio_create(target: Target, params: Any) -> Any:
    p = decode(params, AIO_CREATE_SPEC)
    readonly = p.get("readonly", False)
    fd = _open(p["filename"], readonly)
    try:
        if p.get("nowait", False):
            raise errno_error(ENOTSUP)
        block_size = p.get("block_size", 0)
        detected = _detected_block_size(fd)
        override = bool(block_size)
        if not block_size:
            if not detected:
                raise errno_error(EINVAL)
            block_size = detected
        elif block_size < detected:
            raise errno_error(EINVAL)
        if block_size < 512 or block_size & (block_size - 1):
            raise errno_error(EINVAL)
        size = _fd_size(fd)
        if size % block_size:
            raise errno_error(EINVAL)
        target.check_new(p["name"], p.get("uuid"))
        cls = AioFallocateBdev if p.get("fallocate", False) else AioBdev
        bdev = cls(
            target,
            p["name"],
            filename=p["filename"],
            fd=fd,
            num_blocks=size // block_size,
            block_size=block_size,
            uuid=p.get("uuid"),
            block_size_override=override,
            readonly=readonly,
            fallocate=p.get("fallocate", False),
        )
    except BaseException:
        os.close(fd)
        raise
    await target.register_bdev(bdev)
    return p["name"]


def _find_aio(target: Target, name: str) -> AioBdev:
    return target.get_bdev_of(name, AioBdev)


@rpc("bdev_aio_delete")
async def bdev_aio_delete(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)})
    bdev = _find_aio(target, p["name"])
    await target.unregister_bdev(bdev)
    return True


@rpc("bdev_aio_rescan")
async def bdev_aio_rescan(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)})
    bdev = _find_aio(target, p["name"])
    size = bdev.file_size()
    if size == 0:
        await target.unregister_bdev(bdev)
        return True
    num_blocks = size // bdev.block_size
    if num_blocks != bdev.num_blocks:
        # The rescan holds the bdev open itself, so a shrink always finds an open descriptor.
        if num_blocks < bdev.num_blocks:
            raise errno_error(EBUSY)
        bdev.resize(num_blocks)
    return True
