"""Fault injection: extra methods, all prefixed sim_ so they never clash with SPDK's."""

from __future__ import annotations

from typing import Any

from .decode import decode
from .errors import ENODEV, errno_error
from .registry import rpc
from .target import Target


@rpc("sim_bdev_fail")
async def sim_bdev_fail(target: Target, params: Any) -> Any:
    """The device dies: I/O fails and the bdev is hot-removed, as when a drive is pulled."""
    p = decode(params, {"name": ("str", True)}, code=-32602)
    bdev = target.get_bdev(p["name"])
    bdev.failed = True
    target.state(FailedDevices).names[bdev.name] = bdev
    await target.unregister_bdev(bdev)
    return True


@rpc("sim_bdev_restore")
async def sim_bdev_restore(target: Target, params: Any) -> Any:
    """A failed device returns: it is registered again (with its uuid) and examined."""
    p = decode(params, {"name": ("str", True)}, code=-32602)
    failed = target.state(FailedDevices).names.pop(p["name"], None)
    if failed is None:
        raise errno_error(ENODEV)
    bdev = failed.revive()
    await target.register_bdev(bdev)
    return True


@rpc("sim_rpc_delay")
async def sim_rpc_delay(target: Target, params: Any) -> Any:
    p = decode(params, {"method": ("str", True), "ms": ("u32", True)}, code=-32602)
    if p["ms"]:
        target.rpc_delays[p["method"]] = p["ms"]
    else:
        target.rpc_delays.pop(p["method"], None)
    return True


@rpc("sim_rpc_error")
async def sim_rpc_error(target: Target, params: Any) -> Any:
    p = decode(params, {"method": ("str", True), "code": ("i32", True), "count": ("u32", False)}, code=-32602)
    count = p.get("count", 1)
    if count:
        target.rpc_errors[p["method"]] = (p["code"], count)
    else:
        target.rpc_errors.pop(p["method"], None)
    return True


@rpc("sim_drop_connections")
async def sim_drop_connections(target: Target, params: Any) -> Any:
    decode(params, {})
    for conn in list(target.connections):
        conn.drop()
    return True


class FailedDevices:
    def __init__(self) -> None:
        self.names: dict[str, Any] = {}
