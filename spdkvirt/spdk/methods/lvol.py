"""Typed wrappers: logical volume stores and logical volumes (bdev_lvol_*).

An lvol bdev is named by its UUID (the create calls return it) with the alias `<lvs>/<lvol>`;
`bdev_lvol_create`'s `uuid` selects the lvstore. Sizes are MiB, rounded up to whole clusters.
"""

from __future__ import annotations

from .base import JsonObject, Methods, params


class LvolMethods(Methods):
    async def bdev_lvol_create_lvstore(
        self,
        bdev_name: str,
        lvs_name: str,
        *,
        cluster_sz: int | None = None,
        clear_method: str | None = None,
        num_md_pages_per_cluster_ratio: int | None = None,
        md_page_size: int | None = None,
    ) -> str:
        """Create an lvstore on a bdev; returns the lvstore's uuid."""
        return await self._str(
            "bdev_lvol_create_lvstore",
            params(
                bdev_name=bdev_name,
                lvs_name=lvs_name,
                cluster_sz=cluster_sz,
                clear_method=clear_method,
                num_md_pages_per_cluster_ratio=num_md_pages_per_cluster_ratio,
                md_page_size=md_page_size,
            ),
        )

    async def bdev_lvol_delete_lvstore(self, *, uuid: str | None = None, lvs_name: str | None = None) -> bool:
        """Delete an lvstore (by uuid or name) and every lvol in it."""
        return await self._bool("bdev_lvol_delete_lvstore", params(uuid=uuid, lvs_name=lvs_name))

    async def bdev_lvol_get_lvstores(self, *, uuid: str | None = None, lvs_name: str | None = None) -> list[JsonObject]:
        return await self._objects("bdev_lvol_get_lvstores", params(uuid=uuid, lvs_name=lvs_name))

    async def bdev_lvol_rename_lvstore(self, old_name: str, new_name: str) -> bool:
        return await self._bool("bdev_lvol_rename_lvstore", params(old_name=old_name, new_name=new_name))

    async def bdev_lvol_grow_lvstore(self, *, uuid: str | None = None, lvs_name: str | None = None) -> bool:
        """Grow the lvstore to the current size of its base bdev."""
        return await self._bool("bdev_lvol_grow_lvstore", params(uuid=uuid, lvs_name=lvs_name))

    async def bdev_lvol_create(
        self,
        lvol_name: str,
        size_in_mib: int,
        *,
        lvs_name: str | None = None,
        uuid: str | None = None,
        thin_provision: bool | None = None,
        clear_method: str | None = None,
    ) -> str:
        """Create an lvol in the lvstore named `lvs_name` or with uuid `uuid`; returns the lvol's
        uuid, which is also its bdev name."""
        return await self._str(
            "bdev_lvol_create",
            params(
                lvol_name=lvol_name,
                size_in_mib=size_in_mib,
                thin_provision=thin_provision,
                uuid=uuid,
                lvs_name=lvs_name,
                clear_method=clear_method,
            ),
        )

    async def bdev_lvol_delete(self, name: str) -> bool:
        return await self._bool("bdev_lvol_delete", params(name=name))

    async def bdev_lvol_resize(self, name: str, size_in_mib: int) -> bool:
        return await self._bool("bdev_lvol_resize", params(name=name, size_in_mib=size_in_mib))

    async def bdev_lvol_snapshot(self, lvol_name: str, snapshot_name: str) -> str:
        """Snapshot an lvol (which becomes a thin clone of it); returns the snapshot's uuid."""
        return await self._str("bdev_lvol_snapshot", params(lvol_name=lvol_name, snapshot_name=snapshot_name))

    async def bdev_lvol_clone(self, snapshot_name: str, clone_name: str) -> str:
        """Clone a snapshot (or read-only lvol); returns the clone's uuid."""
        return await self._str("bdev_lvol_clone", params(snapshot_name=snapshot_name, clone_name=clone_name))

    async def bdev_lvol_inflate(self, name: str) -> bool:
        return await self._bool("bdev_lvol_inflate", params(name=name))

    async def bdev_lvol_decouple_parent(self, name: str) -> bool:
        return await self._bool("bdev_lvol_decouple_parent", params(name=name))

    async def bdev_lvol_set_parent(self, lvol_name: str, parent_name: str) -> bool:
        """Make a thin lvol a clone of a snapshot of the same size and lvstore."""
        return await self._bool("bdev_lvol_set_parent", params(lvol_name=lvol_name, parent_name=parent_name))

    async def bdev_lvol_set_parent_bdev(self, lvol_name: str, parent_name: str) -> bool:
        """Make a thin lvol a clone of an external bdev (an esnap clone)."""
        return await self._bool("bdev_lvol_set_parent_bdev", params(lvol_name=lvol_name, parent_name=parent_name))

    async def bdev_lvol_set_read_only(self, name: str) -> bool:
        return await self._bool("bdev_lvol_set_read_only", params(name=name))

    async def bdev_lvol_rename(self, old_name: str, new_name: str) -> bool:
        """Rename an lvol (its bdev keeps its uuid name; the alias changes)."""
        return await self._bool("bdev_lvol_rename", params(old_name=old_name, new_name=new_name))

    async def bdev_lvol_get_lvols(
        self, *, lvs_uuid: str | None = None, lvs_name: str | None = None
    ) -> list[JsonObject]:
        return await self._objects("bdev_lvol_get_lvols", params(lvs_uuid=lvs_uuid, lvs_name=lvs_name))
