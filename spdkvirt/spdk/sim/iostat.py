"""bdev_get_iostat, bdev_reset_iostat and bdev_set_qos_limit.

I/O counters come from each bdev's IoStats (counted on its data path); latencies are derived
from the counts. Channels, as bdev_get_iostat per_channel lists them, exist on the threads
where a bdev's users do I/O: the NVMe-oF poll group for an exported bdev, the app thread for
an lvstore's base, and wherever a bdev built on top of it has channels.

QoS follows SPDK's rules: limits not named keep their value, 0 disables one, IOPS round up to
a multiple of 1000. A change on a bdev that nobody has open is accepted once and then never
completes, so every later change fails with EAGAIN.
"""

from __future__ import annotations

import time
from typing import Any

from .bdev import Bdev, IoStats
from .decode import U64_MAX, decode
from .errors import EAGAIN, EINVAL, RpcError, errno_error
from .registry import rpc
from .target import Target

TICK_RATE = 2_600_000_000
APP_THREAD_ID = 1
NVMF_POLL_GROUP_THREAD_ID = 2
# Plausible per-I/O latencies in ticks, for the derived latency counters.
READ_TICKS = 60_000
WRITE_TICKS = 80_000

RESET_MODES = ("all", "maxmin", "error", "none")
MAX_NAMES = 1024
QOS_KEYS = ("rw_ios_per_sec", "rw_mbytes_per_sec", "r_mbytes_per_sec", "w_mbytes_per_sec")
QOS_MIN_IOS_PER_SEC = 1000
QOS_MAX_MBYTES_PER_SEC = U64_MAX // (1024 * 1024)


def ticks() -> int:
    return time.monotonic_ns() * (TICK_RATE // 1_000_000) // 1000


class IostatState:
    """Which bdevs had their max/min latencies reset since their last I/O."""

    def __init__(self) -> None:
        self.maxmin_reset: dict[int, tuple[int, int]] = {}


def stat_json(stats: IoStats, maxmin_valid: bool = True) -> dict[str, Any]:
    """spdk_bdev_dump_io_stat_json for one set of counters."""

    def latency(prefix: str, ops: int, per_op: int) -> dict[str, int]:
        seen = maxmin_valid and ops > 0
        return {
            f"{prefix}_latency_ticks": ops * per_op,
            f"max_{prefix}_latency_ticks": per_op if seen else 0,
            f"min_{prefix}_latency_ticks": per_op if seen else 0,
        }

    out: dict[str, Any] = {
        "bytes_read": stats.bytes_read,
        "num_read_ops": stats.num_read_ops,
        "bytes_written": stats.bytes_written,
        "num_write_ops": stats.num_write_ops,
        "bytes_unmapped": stats.bytes_unmapped,
        "num_unmap_ops": stats.num_unmap_ops,
        "bytes_copied": stats.bytes_copied,
        "num_copy_ops": stats.num_copy_ops,
    }
    out.update(latency("read", stats.num_read_ops, READ_TICKS))
    out.update(latency("write", stats.num_write_ops, WRITE_TICKS))
    out.update(latency("unmap", stats.num_unmap_ops, WRITE_TICKS))
    out.update(latency("copy", stats.num_copy_ops, WRITE_TICKS))
    out["io_error"] = {k: v for k, v in stats.io_error.items() if v}
    return out


def channel_threads(bdev: Bdev, seen: set[int] | None = None) -> list[int]:
    """Ids of the threads holding an I/O channel to bdev, in thread id order.

    A user holds channels where it does I/O: an NVMe-oF namespace on the poll group, an
    lvstore (blobstore) on the app thread; a bdev built on top of this one (raid, lvol, error)
    holds one wherever it has channels itself.
    """
    seen = set() if seen is None else seen
    if id(bdev) in seen:
        return []
    seen.add(id(bdev))
    threads: set[int] = set()
    for user in bdev.users():
        for upper in _upper_bdevs(user, bdev):
            threads.update(channel_threads(upper, seen))
        module = type(user).__module__.rsplit(".", 1)[-1]
        if module == "nvmf":
            threads.add(NVMF_POLL_GROUP_THREAD_ID)
        elif module == "lvol":
            threads.add(APP_THREAD_ID)
    return sorted(threads)


def _upper_bdevs(user: Any, bdev: Bdev) -> list[Bdev]:
    """The bdevs a user of bdev exposes on top of it (itself, a raid, an lvstore's lvols)."""
    if isinstance(user, Bdev):
        return [user]
    out: list[Bdev] = []
    for value in getattr(user, "__dict__", {}).values():
        items = value if isinstance(value, list) else [value]
        out.extend(v for v in items if isinstance(v, Bdev) and v is not bdev)
    return out


def _maxmin_valid(st: IostatState, bdev: Bdev) -> bool:
    mark = st.maxmin_reset.get(id(bdev))
    if mark is None:
        return True
    if mark == (bdev.stats.num_read_ops, bdev.stats.num_write_ops):
        return False
    del st.maxmin_reset[id(bdev)]
    return True


def reset_stats(st: IostatState, bdev: Bdev, mode: str) -> None:
    """spdk_bdev_reset_io_stat: all, maxmin (latency extremes), error (io_error) or none."""
    if mode == "none":
        return
    if mode in ("all", "error"):
        bdev.stats.io_error = {}
        if mode == "error":
            return
    if mode == "all":
        bdev.stats.reset()
    st.maxmin_reset[id(bdev)] = (bdev.stats.num_read_ops, bdev.stats.num_write_ops)


def device_entry(st: IostatState, bdev: Bdev) -> dict[str, Any]:
    out: dict[str, Any] = {"name": bdev.name}
    out.update(stat_json(bdev.stats, _maxmin_valid(st, bdev)))
    if bdev.module == "nvme":
        out["driver_specific"] = {}
    return out


def channel_entries(st: IostatState, bdev: Bdev) -> list[dict[str, Any]]:
    """One entry per channel; the device's counters are shown on its first channel."""
    out = []
    for i, thread_id in enumerate(channel_threads(bdev)):
        stats = bdev.stats if i == 0 else IoStats()
        entry: dict[str, Any] = {"thread_id": thread_id}
        entry.update(stat_json(stats, _maxmin_valid(st, bdev)))
        entry["io_error"] = {}
        out.append(entry)
    return out


@rpc("bdev_get_iostat")
async def bdev_get_iostat(target: Target, params: Any) -> Any:
    p = decode(
        params,
        {"names": ("names", False), "per_channel": ("bool", False), "reset_mode": ("reset_mode", False)},
        extra={
            "reset_mode": lambda v: v in RESET_MODES,
            "names": lambda v: isinstance(v, list) and len(v) <= MAX_NAMES and all(isinstance(n, str) for n in v),
        },
    )
    names: list[str] | None = p.get("names")
    per_channel = p.get("per_channel", False)
    mode = p.get("reset_mode", "none")
    if per_channel and (names is None or len(names) != 1):
        raise errno_error(EINVAL)
    bdevs = list(target.iter_bdevs()) if names is None else [target.get_bdev(n) for n in names]
    st = target.state(IostatState)
    out: dict[str, Any] = {"tick_rate": TICK_RATE, "ticks": ticks()}
    if per_channel:
        out["name"] = bdevs[0].name
        out["channels"] = channel_entries(st, bdevs[0])
    else:
        out["bdevs"] = [device_entry(st, b) for b in bdevs]
    for b in bdevs:
        reset_stats(st, b, mode)
    return out


@rpc("bdev_reset_iostat")
async def bdev_reset_iostat(target: Target, params: Any) -> Any:
    p = decode(
        params,
        {"name": ("str", False), "mode": ("reset_mode", False)},
        extra={"reset_mode": lambda v: v in RESET_MODES},
    )
    mode = p.get("mode", "all")
    if mode == "none":
        return True
    name = p.get("name")
    bdevs = list(target.iter_bdevs()) if name is None else [target.get_bdev(name)]
    st = target.state(IostatState)
    for b in bdevs:
        reset_stats(st, b, mode)
    return True


def qos_round(key: str, value: int) -> int:
    """A requested limit as SPDK stores it, in the unit assigned_rate_limits shows."""
    if key == "rw_ios_per_sec":
        return -(-value // QOS_MIN_IOS_PER_SEC) * QOS_MIN_IOS_PER_SEC
    return min(value, QOS_MAX_MBYTES_PER_SEC)


def qos_enabled(bdev: Bdev) -> bool:
    return any(v > 0 for v in bdev.qos.values())


@rpc("bdev_set_qos_limit")
async def bdev_set_qos_limit(target: Target, params: Any) -> Any:
    spec = {"name": ("str", True), **dict.fromkeys(QOS_KEYS, ("u64", False))}
    p = decode(params, spec)
    bdev = target.get_bdev(p["name"])
    limits = {k: p[k] for k in QOS_KEYS if k in p and p[k] != U64_MAX}
    if not limits:
        raise RpcError(-EINVAL, "No rate limits specified")
    if bdev.qos_set_once:
        raise RpcError(-32602, f"Failed to configure rate limit: {errno_error(EAGAIN).message}")
    disable = all(v == 0 for v in limits.values())
    if disable and not qos_enabled(bdev):
        return True
    for key, value in limits.items():
        bdev.qos[key] = qos_round(key, value)
    if not bdev.is_open:
        bdev.qos_set_once = True
    return True
