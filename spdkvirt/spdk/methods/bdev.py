"""Typed wrappers: the bdev layer (get, examine, iostat, QoS) and the malloc, null, aio and error bdevs."""

from __future__ import annotations

from .base import JsonObject, Methods, as_objects, params

# bdev_get_bdevs `timeout` is SPDK's wait in ms; the call's own deadline is stretched past it.
_WAIT_MARGIN_S = 5.0


class BdevMethods(Methods):
    async def bdev_get_bdevs(
        self,
        name: str | None = None,
        *,
        timeout: int | None = None,  # noqa: ASYNC109 - SPDK's own parameter (ms), not our deadline
    ) -> list[JsonObject]:
        """All bdevs, or the one named (name, alias or uuid): SpdkNotFound when missing, or
        SpdkTimedOut when `timeout` ms passed without it appearing."""
        at_least = None if timeout is None else timeout / 1000 + _WAIT_MARGIN_S
        method = "bdev_get_bdevs"
        result = await self._call(method, params(name=name, timeout=timeout), at_least=at_least)
        return as_objects(method, result)

    async def bdev_wait_for_examine(self) -> bool:
        return await self._bool("bdev_wait_for_examine")

    async def bdev_get_iostat(
        self, *, names: list[str] | None = None, per_channel: bool | None = None, reset_mode: str | None = None
    ) -> JsonObject:
        return await self._object(
            "bdev_get_iostat", params(names=names, per_channel=per_channel, reset_mode=reset_mode)
        )

    async def bdev_reset_iostat(self, *, name: str | None = None, mode: str | None = None) -> bool:
        return await self._bool("bdev_reset_iostat", params(name=name, mode=mode))

    async def bdev_set_qos_limit(
        self,
        name: str,
        *,
        rw_ios_per_sec: int | None = None,
        rw_mbytes_per_sec: int | None = None,
        r_mbytes_per_sec: int | None = None,
        w_mbytes_per_sec: int | None = None,
    ) -> bool:
        """Set QoS limits (0 disables one); limits not given are left as they are."""
        return await self._bool(
            "bdev_set_qos_limit",
            params(
                name=name,
                rw_ios_per_sec=rw_ios_per_sec,
                rw_mbytes_per_sec=rw_mbytes_per_sec,
                r_mbytes_per_sec=r_mbytes_per_sec,
                w_mbytes_per_sec=w_mbytes_per_sec,
            ),
        )

    # -- malloc ------------------------------------------------------------------------------------

    async def bdev_malloc_create(
        self,
        num_blocks: int,
        block_size: int,
        *,
        name: str | None = None,
        uuid: str | None = None,
        physical_block_size: int | None = None,
        optimal_io_boundary: int | None = None,
        md_size: int | None = None,
        md_interleave: bool | None = None,
        dif_type: int | None = None,
        dif_is_head_of_md: bool | None = None,
        dif_pi_format: int | None = None,
        numa_id: int | None = None,
    ) -> str:
        """Create a RAM bdev; returns its name (`Malloc<n>` when none is given)."""
        return await self._str(
            "bdev_malloc_create",
            params(
                name=name,
                num_blocks=num_blocks,
                block_size=block_size,
                uuid=uuid,
                physical_block_size=physical_block_size,
                optimal_io_boundary=optimal_io_boundary,
                md_size=md_size,
                md_interleave=md_interleave,
                dif_type=dif_type,
                dif_is_head_of_md=dif_is_head_of_md,
                dif_pi_format=dif_pi_format,
                numa_id=numa_id,
            ),
        )

    async def bdev_malloc_delete(self, name: str) -> bool:
        return await self._bool("bdev_malloc_delete", params(name=name))

    # -- null --------------------------------------------------------------------------------------

    async def bdev_null_create(
        self,
        name: str,
        num_blocks: int,
        block_size: int,
        *,
        uuid: str | None = None,
        physical_block_size: int | None = None,
        md_size: int | None = None,
        dif_type: int | None = None,
        dif_is_head_of_md: bool | None = None,
        dif_pi_format: int | None = None,
    ) -> str:
        return await self._str(
            "bdev_null_create",
            params(
                name=name,
                num_blocks=num_blocks,
                block_size=block_size,
                uuid=uuid,
                physical_block_size=physical_block_size,
                md_size=md_size,
                dif_type=dif_type,
                dif_is_head_of_md=dif_is_head_of_md,
                dif_pi_format=dif_pi_format,
            ),
        )

    async def bdev_null_delete(self, name: str) -> bool:
        return await self._bool("bdev_null_delete", params(name=name))

    async def bdev_null_resize(self, name: str, new_size: int) -> bool:
        """Resize to `new_size` MiB."""
        return await self._bool("bdev_null_resize", params(name=name, new_size=new_size))

    # -- aio ---------------------------------------------------------------------------------------

    async def bdev_aio_create(
        self,
        filename: str,
        name: str,
        *,
        block_size: int | None = None,
        readonly: bool | None = None,
        fallocate: bool | None = None,
        uuid: str | None = None,
        nowait: bool | None = None,
    ) -> str:
        """Attach a file or block device; answers (with the name) after examine of the new bdev.
        A regular file needs `block_size`; pass the old `uuid` to get raids and lvstores back."""
        return await self._str(
            "bdev_aio_create",
            params(
                name=name,
                filename=filename,
                block_size=block_size,
                readonly=readonly,
                fallocate=fallocate,
                uuid=uuid,
                nowait=nowait,
            ),
        )

    async def bdev_aio_delete(self, name: str) -> bool:
        return await self._bool("bdev_aio_delete", params(name=name))

    async def bdev_aio_rescan(self, name: str) -> bool:
        """Pick up a changed file size (SpdkBusy when shrinking an open bdev)."""
        return await self._bool("bdev_aio_rescan", params(name=name))

    # -- passthru ----------------------------------------------------------------------------------

    async def bdev_passthru_create(self, base_bdev_name: str, name: str, *, uuid: str | None = None) -> str:
        """A passthru bdev over a base (which may appear later; SPDK keeps the pair until deleted)."""
        return await self._str("bdev_passthru_create", params(base_bdev_name=base_bdev_name, name=name, uuid=uuid))

    async def bdev_passthru_delete(self, name: str) -> bool:
        return await self._bool("bdev_passthru_delete", params(name=name))

    # -- error injection ---------------------------------------------------------------------------

    async def bdev_error_create(self, base_name: str, *, uuid: str | None = None) -> bool:
        """Create `EE_<base_name>` over a base bdev (which may appear later)."""
        return await self._bool("bdev_error_create", params(base_name=base_name, uuid=uuid))

    async def bdev_error_delete(self, name: str) -> bool:
        return await self._bool("bdev_error_delete", params(name=name))

    async def bdev_error_inject_error(
        self,
        name: str,
        io_type: str,
        error_type: str,
        *,
        num: int | None = None,
        queue_depth: int | None = None,
        corrupt_offset: int | None = None,
        corrupt_value: int | None = None,
        nvme_sct: int | None = None,
        nvme_sc: int | None = None,
    ) -> bool:
        """io_type: read, write, unmap, flush, all, clear; error_type: failure, pending,
        corrupt_data, nomem, nvme_failure."""
        return await self._bool(
            "bdev_error_inject_error",
            params(
                name=name,
                io_type=io_type,
                error_type=error_type,
                num=num,
                queue_depth=queue_depth,
                corrupt_offset=corrupt_offset,
                corrupt_value=corrupt_value,
                nvme_sct=nvme_sct,
                nvme_sc=nvme_sc,
            ),
        )

    async def bdev_error_resume_pending(self, name: str) -> bool:
        return await self._bool("bdev_error_resume_pending", params(name=name))
