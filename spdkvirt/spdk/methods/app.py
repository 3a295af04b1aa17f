"""Typed wrappers: application, framework, notifications and keyring RPCs."""

from __future__ import annotations

from typing import Any

from .base import JsonObject, Methods, as_list, params


class AppMethods(Methods):
    async def spdk_get_version(self) -> JsonObject:
        return await self._object("spdk_get_version")

    async def spdk_kill_instance(self, sig_name: str) -> bool:
        """SPDK signals itself (SIGINT, SIGTERM, SIGQUIT, SIGHUP or SIGKILL); after a SIGKILL no answer comes."""
        return await self._bool("spdk_kill_instance", params(sig_name=sig_name))

    async def rpc_get_methods(self, *, current: bool | None = None, include_aliases: bool | None = None) -> list[str]:
        return await self._strs("rpc_get_methods", params(current=current, include_aliases=include_aliases))

    async def framework_start_init(self) -> bool:
        return await self._bool("framework_start_init")

    async def framework_wait_init(self) -> bool:
        return await self._bool("framework_wait_init")

    async def framework_get_subsystems(self) -> list[JsonObject]:
        return await self._objects("framework_get_subsystems")

    async def framework_get_config(self, name: str, *, with_batches: bool | None = None) -> list[Any]:
        """A subsystem's saved config calls ({"method", "params"} objects; with `with_batches`, lists
        of them are calls that may run together). A subsystem with nothing to save (scsi) gives []."""
        method = "framework_get_config"
        result: Any = await self._call(method, params(name=name, with_batches=with_batches))
        return [] if result is None else as_list(method, result)

    async def notify_get_types(self) -> list[str]:
        return await self._strs("notify_get_types")

    async def notify_get_notifications(self, *, id: int | None = None, max: int | None = None) -> list[JsonObject]:
        """Events from `id` on (ids start at 0 in every SPDK process), at most `max` of them."""
        return await self._objects("notify_get_notifications", params(id=id, max=max))

    async def keyring_file_add_key(self, name: str, path: str) -> bool:
        return await self._bool("keyring_file_add_key", params(name=name, path=path))

    async def keyring_file_remove_key(self, name: str) -> bool:
        return await self._bool("keyring_file_remove_key", params(name=name))

    async def keyring_get_keys(self) -> list[JsonObject]:
        return await self._objects("keyring_get_keys")
