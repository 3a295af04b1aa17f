"""Malloc and null bdevs."""

from __future__ import annotations

from typing import Any

from .bdev import Bdev, SparseBuffer, io_types
from .decode import decode
from .errors import EINVAL, errno_error
from .registry import rpc
from .target import Target


class MallocBdev(Bdev):
    product_name = "Malloc disk"
    module = "malloc"
    io = io_types(
        read=True,
        write=True,
        unmap=True,
        flush=True,
        reset=True,
        write_zeroes=True,
        zcopy=True,
        compare=True,
        abort=True,
        copy=True,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mem = SparseBuffer()

    async def do_read(self, offset: int, length: int) -> bytes:
        return self.mem.read(offset, length)

    async def do_write(self, offset: int, data: bytes) -> None:
        self.mem.write(offset, data)

    def stacked_memory_domains(self) -> list[dict[str, str]]:
        # malloc lists no domain types of its own but accepts every registered memory domain
        # (the DMA and accel domains), which is what a raid over it reports.
        return [{"dma_device_type": "DMA"}, {"dma_device_type": "ACCEL"}]


class NullBdev(Bdev):
    product_name = "Null disk"
    module = "null"
    has_numa_id = False
    io = io_types(read=True, write=True, reset=True, write_zeroes=True, abort=True)
    md_size: int = 0
    dif_type: int = 0
    dif_is_head_of_md: bool = False
    md_interleave: bool = False

    def extra_top_level(self) -> dict[str, Any]:
        if not self.md_size:
            return {}
        return {
            "md_size": self.md_size,
            "md_interleave": self.md_interleave,
            "dif_type": self.dif_type,
            "dif_is_head_of_md": self.dif_is_head_of_md,
            "enabled_dif_check_types": {
                "reftag": self.dif_type in (1, 2),
                "apptag": False,
                "guard": bool(self.dif_type),
            },
            "dif_pi_format": 0,
        }


class MallocState:
    def __init__(self) -> None:
        self.unnamed = 0
        self.null_unnamed = 0


MALLOC_SPEC: dict[str, tuple[str, bool]] = {
    "name": ("str", False),
    "num_blocks": ("u64", True),
    "block_size": ("u32", True),
    "physical_block_size": ("u32", False),
    "uuid": ("uuid", False),
    "optimal_io_boundary": ("u32", False),
    "md_size": ("u32", False),
    "md_interleave": ("bool", False),
    "dif_type": ("u32", False),
    "dif_is_head_of_md": ("bool", False),
    "dif_pi_format": ("u32", False),
    "numa_id": ("i32", False),
}


MD_SIZES = (0, 8, 16, 32, 64, 128)


def _interleaved_block_size(block_size: int, md_size: int, interleave: bool) -> int:
    return block_size + md_size if interleave and md_size else block_size


@rpc("bdev_malloc_create")
async def bdev_malloc_create(target: Target, params: Any) -> Any:
    p = decode(params, MALLOC_SPEC)
    st = target.state(MallocState)
    block_size = p["block_size"]
    if block_size % 512 or block_size == 0 or p["num_blocks"] == 0:
        raise errno_error(EINVAL)
    if p.get("physical_block_size", 0) % 512 or p.get("md_size", 0) not in MD_SIZES:
        raise errno_error(EINVAL)
    name = p.get("name")
    if name is None:  # drawn only once the options passed: a failed register still uses it up
        name = f"Malloc{st.unnamed}"
        st.unnamed += 1
    target.check_new(name, p.get("uuid"))
    md_size = p.get("md_size", 0)
    bdev = MallocBdev(
        target,
        name,
        p["num_blocks"],
        _interleaved_block_size(block_size, md_size, p.get("md_interleave", False)),
        p.get("uuid"),
    )
    await target.register_bdev(bdev)
    return name


@rpc("bdev_malloc_delete")
async def bdev_malloc_delete(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)})
    bdev = target.get_bdev_of(p["name"], MallocBdev)
    await target.unregister_bdev(bdev)
    return True


NULL_SPEC: dict[str, tuple[str, bool]] = {
    "name": ("str", True),
    "num_blocks": ("u64", True),
    "block_size": ("u32", True),
    "physical_block_size": ("u32", False),
    "uuid": ("uuid", False),
    "md_size": ("u32", False),
    "dif_type": ("u32", False),
    "dif_is_head_of_md": ("bool", False),
    "dif_pi_format": ("u32", False),
}


@rpc("bdev_null_create")
async def bdev_null_create(target: Target, params: Any) -> Any:
    p = decode(params, NULL_SPEC)
    if p["num_blocks"] == 0 or p["block_size"] == 0:
        raise errno_error(EINVAL)
    target.check_new(p["name"], p.get("uuid"))
    bdev: NullBdev = NullBdev(target, p["name"], p["num_blocks"], p["block_size"], p.get("uuid"))
    bdev.md_size = p.get("md_size", 0)
    bdev.dif_type = p.get("dif_type", 0)
    bdev.md_interleave = bool(bdev.md_size)
    if bdev.md_size:
        bdev.block_size += bdev.md_size
    await target.register_bdev(bdev)
    return p["name"]


@rpc("bdev_null_delete")
async def bdev_null_delete(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)})
    bdev = target.get_bdev_of(p["name"], NullBdev)
    await target.unregister_bdev(bdev)
    return True


@rpc("bdev_null_resize")
async def bdev_null_resize(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True), "new_size": ("u64", True)})
    bdev = target.get_bdev_of(p["name"], NullBdev)
    new_blocks = p["new_size"] * 1024 * 1024 // bdev.block_size
    if new_blocks < bdev.num_blocks:
        raise errno_error(EINVAL)
    bdev.resize(new_blocks)
    return True
