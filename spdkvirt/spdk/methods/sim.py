"""SIMULATOR ONLY: wrappers for spdkvirt-sim's fault-injection methods (sim_*).

A real spdk_tgt does not serve these (SpdkMethodNotFound); never use them outside tests and
simulations.
"""

from __future__ import annotations

from .base import Methods, params


class SimFaults(Methods):
    async def sim_bdev_fail(self, name: str) -> bool:
        """The device dies: its I/O fails and the bdev is hot-removed, as when a drive is pulled."""
        return await self._bool("sim_bdev_fail", params(name=name))

    async def sim_bdev_restore(self, name: str) -> bool:
        """A failed device comes back (same uuid) and is examined again."""
        return await self._bool("sim_bdev_restore", params(name=name))

    async def sim_rpc_delay(self, method: str, ms: int) -> bool:
        """Delay every call of `method` by `ms` (0 clears)."""
        return await self._bool("sim_rpc_delay", params(method=method, ms=ms))

    async def sim_rpc_error(self, method: str, code: int, *, count: int | None = None) -> bool:
        """The next `count` calls (default 1; 0 clears) of `method` fail with `code`."""
        return await self._bool("sim_rpc_error", params(method=method, code=code, count=count))

    async def sim_drop_connections(self) -> bool:
        """Close every RPC connection (the reply to this call may be lost with them)."""
        return await self._bool("sim_drop_connections")
