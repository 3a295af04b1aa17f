"""Framework, notify and generic bdev RPCs: version, methods, subsystems, bdev_get_bdevs."""

from __future__ import annotations

import asyncio
import json
import os
from functools import cache
from importlib import resources
from typing import Any

from .decode import decode, require_no_params
from .errors import ENODEV, ETIMEDOUT, errno_error, invalid_params
from .registry import rpc
from .target import Target

VERSION = {
    "version": "SPDK v26.05 git sha1 d519b163cb",
    "fields": {"major": 26, "minor": 5, "patch": 0, "suffix": "", "commit": "d519b163cb"},
}
NOTIFY_TYPES = ["bdev_register", "bdev_unregister", "bdev_resize"]


@cache
def method_tables() -> dict[str, Any]:
    """SPDK v26.05's method lists and subsystem order (data recorded from spdk_tgt)."""
    text = resources.files(__package__).joinpath("data/methods.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@rpc("spdk_get_version")
async def spdk_get_version(target: Target, params: Any) -> Any:
    require_no_params(params, "spdk_get_version method requires no parameters")
    return VERSION


@rpc("rpc_get_methods")
async def rpc_get_methods(target: Target, params: Any) -> Any:
    p = decode(params, {"current": ("bool", False), "include_aliases": ("bool", False)})
    tables = method_tables()
    names = list(tables["runtime"] if p.get("current") else tables["all"])
    if p.get("include_aliases"):
        names += tables["aliases"]
    return names


@rpc("framework_get_subsystems")
async def framework_get_subsystems(target: Target, params: Any) -> Any:
    require_no_params(params, "framework_get_subsystems method requires no parameters")
    return method_tables()["subsystems"]


@rpc("framework_wait_init")
async def framework_wait_init(target: Target, params: Any) -> Any:
    require_no_params(params, "framework_wait_init method requires no parameters")
    return True


@rpc("notify_get_types")
async def notify_get_types(target: Target, params: Any) -> Any:
    require_no_params(params, "No parameters required")
    return list(NOTIFY_TYPES)


@rpc("notify_get_notifications")
async def notify_get_notifications(target: Target, params: Any) -> Any:
    p = decode(params, {"id": ("i64", False), "max": ("i64", False)}, code=-32602)
    first = p.get("id", 0)
    if first < 0 or p.get("max", 0) < 0:
        raise invalid_params()
    events = target.notifications[first:]
    if "max" in p:
        events = events[: p["max"]]
    return [{"type": t, "ctx": c, "id": first + i} for i, (t, c) in enumerate(events)]


@rpc("bdev_get_bdevs")
async def bdev_get_bdevs(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", False), "timeout": ("u64", False)})
    name = p.get("name")
    if name is None:
        return [b.to_json() for b in target.iter_bdevs()]
    bdev = target.find_bdev(name)
    if bdev is None and p.get("timeout"):
        bdev = await target.wait_for_bdev(name, p["timeout"])
        if bdev is None:
            raise errno_error(ETIMEDOUT)
    if bdev is None:
        raise errno_error(ENODEV)
    return [bdev.to_json()]


@rpc("bdev_wait_for_examine")
async def bdev_wait_for_examine(target: Target, params: Any) -> Any:
    require_no_params(params, "bdev_wait_for_examine requires no parameters")
    return True


SIGNALS = {"SIGINT": 2, "SIGTERM": 15, "SIGQUIT": 3, "SIGHUP": 1, "SIGKILL": 9}


@rpc("spdk_kill_instance")
async def spdk_kill_instance(target: Target, params: Any) -> Any:
    """SPDK signals itself, then answers true (a SIGKILL leaves no time to answer)."""
    try:
        p = decode(params, {"sig_name": ("str", True)})
    except Exception:
        raise invalid_params() from None
    sig = SIGNALS.get(p["sig_name"])
    if sig is None:
        raise invalid_params()
    if sig == SIGNALS["SIGKILL"]:
        os.kill(os.getpid(), sig)
    asyncio.get_running_loop().call_soon(os.kill, os.getpid(), sig)
    return True
