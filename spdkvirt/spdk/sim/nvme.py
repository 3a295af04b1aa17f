"""NVMe/TCP initiator RPCs (bdev_nvme): attach/detach/get controllers, options, hotplug, config.

`bdev_nvme_attach_controller` connects to another simulator's NVMe/TCP listener (nvme_host.py)
and registers one bdev `<name>n<nsid>` per namespace (uuid from the namespace NGUID, else its
UUID); the controllers, their reset/reconnect/loss timers and the bdevs' data path are in
nvme_ctrlr.py. Checks and error codes follow bdev_nvme_rpc.c and spdk_bdev_nvme_create in SPDK's
order. Keys (`psk`, `dhchap_key`, `dhchap_ctrlr_key`) are names in the keyring.
"""

from __future__ import annotations

import errno
import hashlib
import uuid as uuidlib
from typing import Any

from . import nvme_wire
from .decode import decode
from .errors import EALREADY, EBUSY, EEXIST, EINVAL, EIO, ENODEV, EPERM, INVALID_PARAMS, RpcError, errno_error
from .keyring import find_key
from .nvme_ctrlr import (
    DEFAULT_CONNECT_TIMEOUT_US,
    CtrlrOpts,
    HostEnv,
    NvmeBdev,
    NvmeBdevCtrlr,
    NvmeCtrlr,
    PathId,
    resiliency_ok,
)
from .nvme_host import HostConnection
from .nvme_wire import HostAuth
from .registry import rpc
from .target import Target

ENOKEY = 126
ENXIO = errno.ENXIO
NAME_MAX = 512
TRSTRING_MAX = 32
TRADDR_MAX = 257
TRSVCID_MAX = 33
NQN_MAX = 224
HOSTADDR_MAX = 257
HOSTSVCID_MAX = 33
DEFAULT_MAX_BDEVS = 128
DEFAULT_NUM_IO_QUEUES = 1024

ADRFAMS = {"ipv4": "IPv4", "ipv6": "IPv6", "ib": "IB", "fc": "FC"}
TRTYPES = {"pcie": "PCIe", "rdma": "RDMA", "fc": "FC", "tcp": "TCP", "vfiouser": "VFIOUSER"}
TIMEOUT_ACTIONS = ("none", "reset", "abort")
DIGESTS = ("sha256", "sha384", "sha512")
DHGROUPS = ("null", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192")
POLICIES = ("active_passive", "active_active")
SELECTORS = ("round_robin", "queue_depth")
MP_MODES = ("failover", "multipath", "disable")


def default_options() -> dict[str, Any]:
    return {
        "action_on_timeout": "none",
        "timeout_us": 0,
        "timeout_admin_us": 0,
        "keep_alive_timeout_ms": 10000,
        "arbitration_burst": 0,
        "low_priority_weight": 0,
        "medium_priority_weight": 0,
        "high_priority_weight": 0,
        "nvme_adminq_poll_period_us": 10000,
        "nvme_ioq_poll_period_us": 0,
        "io_queue_requests": 0,
        "delay_cmd_submit": True,
        "transport_retry_count": 4,
        "bdev_retry_count": 3,
        "transport_ack_timeout": 0,
        "ctrlr_loss_timeout_sec": 0,
        "reconnect_delay_sec": 0,
        "fast_io_fail_timeout_sec": 0,
        "disable_auto_failback": False,
        "generate_uuids": False,
        "transport_tos": 0,
        "nvme_error_stat": False,
        "rdma_srq_size": 0,
        "io_path_stat": False,
        "allow_accel_sequence": False,
        "rdma_max_cq_size": 0,
        "rdma_cm_event_timeout_ms": 0,
        "dhchap_digests": list(DIGESTS),
        "dhchap_dhgroups": list(DHGROUPS),
        "rdma_umr_per_io": False,
        "tcp_connect_timeout_ms": 0,
        "enable_flush": False,
        "multipath_opts": {"policy": "active_passive"},
    }


class NvmeState:
    """bdev_nvme of one target: global options, this host's identity, controllers by name."""

    def __init__(self) -> None:
        self.options = default_options()
        self.hostid = str(uuidlib.uuid4())  # random per process, as spdk_tgt's default host id
        self.hostnqn = f"nqn.2014-08.org.nvmexpress:uuid:{self.hostid}"
        self.ctrlrs: dict[str, NvmeBdevCtrlr] = {}
        self.hotplug: dict[str, Any] = {"period_us": 100000, "enable": False}

    @property
    def controllers(self) -> dict[str, CtrlrOpts]:
        """The attach options of each named controller (what framework_get_config saves)."""
        return {name: owner.ctrlrs[0].opts for name, owner in self.ctrlrs.items() if owner.ctrlrs}

    def env(self) -> HostEnv:
        o = self.options
        return HostEnv(
            hostid=self.hostid,
            keep_alive_timeout_ms=o["keep_alive_timeout_ms"],
            adminq_poll_period_us=o["nvme_adminq_poll_period_us"],
            bdev_retry_count=o["bdev_retry_count"],
        )


# ---- decoding -------------------------------------------------------------------------------------
def _check_mp_opts(v: Any) -> bool:
    if not isinstance(v, dict) or set(v) - {"policy", "selector", "min_io"}:
        return False
    if "policy" in v and v["policy"] not in POLICIES:
        return False
    if "selector" in v and v["selector"] not in SELECTORS:
        return False
    m = v.get("min_io", 0)
    return isinstance(m, int) and not isinstance(m, bool) and 0 <= m < 2**32


MP_CHECKS = {
    "mp_mode": lambda v: v in MP_MODES,
    "mp_opts": _check_mp_opts,
}

ATTACH_SPEC: dict[str, tuple[str, bool]] = {
    "name": ("str", True),
    "trtype": ("str", True),
    "traddr": ("str", True),
    "adrfam": ("str", False),
    "trsvcid": ("str", False),
    "priority": ("str", False),
    "subnqn": ("str", False),
    "hostnqn": ("str", False),
    "hostaddr": ("str", False),
    "hostsvcid": ("str", False),
    "prchk_reftag": ("bool", False),
    "prchk_guard": ("bool", False),
    "hdgst": ("bool", False),
    "ddgst": ("bool", False),
    "fabrics_connect_timeout_us": ("u64", False),
    "multipath": ("mp_mode", False),
    "num_io_queues": ("u32", False),
    "ctrlr_loss_timeout_sec": ("i32", False),
    "reconnect_delay_sec": ("u32", False),
    "fast_io_fail_timeout_sec": ("u32", False),
    "psk": ("str", False),
    "max_bdevs": ("u32", False),
    "dhchap_key": ("str", False),
    "dhchap_ctrlr_key": ("str", False),
    "allow_unrecognized_csi": ("bool", False),
    "multipath_opts": ("mp_opts", False),
}

DETACH_SPEC: dict[str, tuple[str, bool]] = {
    "name": ("str", True),
    "trtype": ("str", False),
    "traddr": ("str", False),
    "adrfam": ("str", False),
    "trsvcid": ("str", False),
    "subnqn": ("str", False),
    "hostaddr": ("str", False),
    "hostsvcid": ("str", False),
}


def _einval(message: str) -> RpcError:
    return RpcError(-EINVAL, message)


def _too_long(value: str, limit: int) -> bool:
    return len(value.encode()) >= limit


def _parse_path(p: dict[str, Any]) -> PathId:
    """The transport id checks of bdev_nvme_attach/detach_controller, in SPDK's order."""
    trtype = p.get("trtype")
    if trtype is not None and _too_long(trtype, TRSTRING_MAX):
        raise _einval(f"Failed to parse trtype: {trtype}")
    traddr = p.get("traddr", "")
    if _too_long(traddr, TRADDR_MAX):
        raise _einval(f"traddr too long: {traddr}")
    adrfam = p.get("adrfam")
    if adrfam is not None:
        if adrfam.lower() not in ADRFAMS:
            raise _einval(f"Failed to parse adrfam: {adrfam}")
        adrfam = ADRFAMS[adrfam.lower()]
    trsvcid = p.get("trsvcid", "")
    if _too_long(trsvcid, TRSVCID_MAX):
        raise _einval(f"trsvcid too long: {trsvcid}")
    subnqn = p.get("subnqn", "")
    if _too_long(subnqn, NQN_MAX):
        raise _einval(f"subnqn too long: {subnqn}")
    hostaddr = p.get("hostaddr", "")
    if _too_long(hostaddr, HOSTADDR_MAX):
        raise _einval(f"hostaddr too long: {hostaddr}")
    hostsvcid = p.get("hostsvcid", "")
    if _too_long(hostsvcid, HOSTSVCID_MAX):
        raise _einval(f"hostsvcid too long: {hostsvcid}")
    kind = "" if trtype is None else TRTYPES.get(trtype.lower(), "CUSTOM")
    return PathId(kind, adrfam, traddr, trsvcid, subnqn, hostaddr, hostsvcid)


# ---- bdev_nvme_attach_controller ------------------------------------------------------------------
@rpc("bdev_nvme_attach_controller")
async def bdev_nvme_attach_controller(target: Target, params: Any) -> Any:
    p = decode(params, ATTACH_SPEC, extra=MP_CHECKS)
    st = target.state(NvmeState)
    if p.get("max_bdevs", DEFAULT_MAX_BDEVS) == 0:
        raise _einval("max_bdevs cannot be zero")
    path = _parse_path(p)
    hostnqn = p.get("hostnqn", st.hostnqn)
    if _too_long(hostnqn, NQN_MAX):
        raise _einval(f"hostnqn too long: {hostnqn}")
    mode = p.get("multipath", "multipath")
    name = p["name"]
    owner = st.ctrlrs.get(name)
    if owner is not None and owner.ctrlrs:
        _check_new_path(name, owner, path, hostnqn, mode, p)
    num_io_queues = p.get("num_io_queues", DEFAULT_NUM_IO_QUEUES)
    if num_io_queues == 0 or num_io_queues > 65536:
        raise _einval("num_io_queues out of bounds, min: 1 max: 65536")
    defaults = st.options
    mp_opts = p.get("multipath_opts", defaults["multipath_opts"])
    opts = CtrlrOpts(
        hostnqn=hostnqn,
        ctrlr_loss_timeout_sec=p.get("ctrlr_loss_timeout_sec", defaults["ctrlr_loss_timeout_sec"]),
        reconnect_delay_sec=p.get("reconnect_delay_sec", defaults["reconnect_delay_sec"]),
        fast_io_fail_timeout_sec=p.get("fast_io_fail_timeout_sec", defaults["fast_io_fail_timeout_sec"]),
        multipath=mode,
        multipath_policy=mp_opts.get("policy", "active_passive"),
        prchk_reftag=p.get("prchk_reftag", False),
        prchk_guard=p.get("prchk_guard", False),
        hdgst=p.get("hdgst", False),
        ddgst=p.get("ddgst", False),
        fabrics_connect_timeout_us=p.get("fabrics_connect_timeout_us", DEFAULT_CONNECT_TIMEOUT_US),
        num_io_queues=num_io_queues,
        psk=p.get("psk"),
        dhchap_key=p.get("dhchap_key"),
        dhchap_ctrlr_key=p.get("dhchap_ctrlr_key"),
    )
    return await _create(target, name, path, opts, p.get("max_bdevs", DEFAULT_MAX_BDEVS))


def _check_new_path(name: str, owner: NvmeBdevCtrlr, path: PathId, hostnqn: str, mode: str, p: dict[str, Any]) -> None:
    """A controller with this name exists: what the user may add to it."""
    first = owner.ctrlrs[0]
    active = first.active_path
    if mode == "disable":
        raise RpcError(-EALREADY, f"A controller named {name} already exists and multipath is disabled")
    same = (active.traddr, active.trsvcid, active.hostaddr, active.hostsvcid)
    if same == (path.traddr, path.trsvcid, path.hostaddr, path.hostsvcid):
        raise RpcError(-EALREADY, f"A controller named {name} already exists with the specified network path")
    if path.subnqn != active.subnqn:
        raise _einval(f"A controller named {name} already exists, but uses a different subnqn ({active.subnqn})")
    if hostnqn != first.opts.hostnqn:
        raise _einval(f"A controller named {name} already exists, but uses a different hostnqn ({first.opts.hostnqn})")
    if p.get("prchk_reftag") or p.get("prchk_guard"):
        raise _einval(f"A controller named {name} already exists. To add a path, do not specify PI options.")


def _auth(target: Target, opts: CtrlrOpts) -> HostAuth:
    """The keys named by the attach, from the keyring (-ENOKEY when one is missing)."""

    def digest(name: str | None) -> str | None:
        if name is None:
            return None
        key = find_key(target, name)
        if key is None:
            raise RpcError(-ENOKEY, "Required key not available")
        try:
            material = key.read()
        except OSError:
            raise RpcError(-ENOKEY, "Required key not available") from None
        return hashlib.sha256(material.strip()).hexdigest()

    return HostAuth(tls=digest(opts.psk), dhchap=digest(opts.dhchap_key), dhchap_ctrlr=digest(opts.dhchap_ctrlr_key))


async def _create(target: Target, name: str, path: PathId, opts: CtrlrOpts, max_bdevs: int) -> list[str]:
    """spdk_bdev_nvme_create and its completion: the names of the bdevs of this controller."""
    st = target.state(NvmeState)
    for other in st.ctrlrs.values():
        for c in other.ctrlrs:
            if c.active_path.same_trid(path) and c.opts.hostnqn == opts.hostnqn:
                raise errno_error(EEXIST)
    if not name or len(name.encode()) >= NAME_MAX:
        raise errno_error(EINVAL)
    if not resiliency_ok(opts.ctrlr_loss_timeout_sec, opts.reconnect_delay_sec, opts.fast_io_fail_timeout_sec):
        raise errno_error(EINVAL)
    auth = _auth(target, opts)
    owner = st.ctrlrs.get(name)
    if owner is not None and owner.ctrlrs and owner.ctrlrs[0].opts.is_multipath != opts.is_multipath:
        raise errno_error(EINVAL)
    if path.trtype != "TCP":
        raise errno_error(ENODEV)  # no such transport in this build
    if owner is None:
        owner = NvmeBdevCtrlr(target, name, st.ctrlrs)
    ctrlr = NvmeCtrlr(target, owner, path, opts, st.env(), auth)
    try:
        if path.adrfam not in ("IPv4", "IPv6"):
            raise nvme_wire.ConnectRejected("Unhandled ADRFAM")
        conn = await ctrlr.open()
    except nvme_wire.ConnectRejected:
        raise errno_error(EIO) from None
    if owner.ctrlrs and not opts.is_multipath:
        return _add_failover_path(owner, conn, path)
    clash = any(
        c.cdata.cntlid == conn.ctrlr.cntlid or c.opts.multipath_policy != opts.multipath_policy for c in owner.ctrlrs
    )
    if clash:  # bdev_nvme_check_multipath
        conn.close()
        raise errno_error(EINVAL)
    st.ctrlrs.setdefault(name, owner)
    owner.ctrlrs.append(ctrlr)
    ctrlr.adopt(conn)
    for data in sorted(conn.namespaces.values(), key=lambda d: d.nsid):
        await ctrlr.add_ns(data)
    names = [ns.bdev.name for _, ns in sorted(ctrlr.namespaces.items()) if ns.bdev is not None]
    if len(names) > max_bdevs:
        raise RpcError(-errno.ERANGE, "Numerical result out of range")
    return names


def _add_failover_path(owner: NvmeBdevCtrlr, conn: HostConnection, path: PathId) -> list[str]:
    """bdev_nvme_add_secondary_trid: the new path must reach the same namespaces; it waits aside."""
    conn.close()
    ctrlr = owner.ctrlrs[0]
    if any(p.same_trid(path) for p in ctrlr.paths):
        raise errno_error(EALREADY)
    for nsid, ns in ctrlr.namespaces.items():
        data = conn.namespaces.get(nsid)
        if data is None or ns.data is None or not data.same_namespace(ns.data):
            raise errno_error(EINVAL)
    failed = [i for i, q in enumerate(ctrlr.paths) if i > 0 and q.last_failed]
    ctrlr.paths.insert(failed[0] if failed else len(ctrlr.paths), path)
    return []


# ---- detach, get ------------------------------------------------------------------------------------
@rpc("bdev_nvme_detach_controller")
async def bdev_nvme_detach_controller(target: Target, params: Any) -> Any:
    p = decode(params, DETACH_SPEC)
    want = _parse_path(p)
    owner = target.state(NvmeState).ctrlrs.get(p["name"])
    if owner is None:
        raise errno_error(ENODEV)
    rc = -ENXIO
    for ctrlr in list(owner.ctrlrs):
        spare = [q for q in ctrlr.paths[1:] if q.matches(want)]
        for q in spare:
            ctrlr.paths.remove(q)
        if spare:
            rc = 0
        if not ctrlr.active_path.matches(want):
            continue
        if len(ctrlr.paths) == 1:
            await ctrlr.delete()
        elif ctrlr.resetting:
            raise errno_error(EBUSY)
        else:
            ctrlr.start_failover(remove=True)
        rc = 0
    if rc:
        raise errno_error(-rc)
    return True


@rpc("bdev_nvme_get_controllers")
async def bdev_nvme_get_controllers(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", False)})
    st = target.state(NvmeState)
    if "name" in p:
        owner = st.ctrlrs.get(p["name"])
        if owner is None:
            raise _einval(f"Controller {p['name']} does not exist")
        return [owner.info_json()]
    return [owner.info_json() for owner in st.ctrlrs.values()]


# ---- reset, enable, disable ---------------------------------------------------------------------------
CTRLR_OP_SPEC: dict[str, tuple[str, bool]] = {"name": ("str", True), "cntlid": ("u16", False)}


async def _controller_op(target: Target, params: Any, op: str) -> Any:
    """rpc_bdev_nvme_controller_op: one controller by cntlid, else each in turn until one fails."""
    try:
        p = decode(params, CTRLR_OP_SPEC)
    except RpcError:
        raise RpcError(INVALID_PARAMS, "Invalid argument") from None
    owner = target.state(NvmeState).ctrlrs.get(p["name"])
    if owner is None:
        raise errno_error(ENODEV)
    cntlid = p.get("cntlid", 0)
    ctrlrs = list(owner.ctrlrs)
    if cntlid:
        ctrlrs = [c for c in ctrlrs if c.cdata.cntlid == cntlid]
        if not ctrlrs:
            raise errno_error(ENODEV)
    for ctrlr in ctrlrs:
        if op == "reset":
            rc = await ctrlr.reset()
        elif op == "enable":
            rc = await ctrlr.enable()
        else:
            rc = await ctrlr.disable()
        if rc:
            raise errno_error(-rc)
    return True


@rpc("bdev_nvme_reset_controller")
async def bdev_nvme_reset_controller(target: Target, params: Any) -> Any:
    return await _controller_op(target, params, "reset")


@rpc("bdev_nvme_enable_controller")
async def bdev_nvme_enable_controller(target: Target, params: Any) -> Any:
    return await _controller_op(target, params, "enable")


@rpc("bdev_nvme_disable_controller")
async def bdev_nvme_disable_controller(target: Target, params: Any) -> Any:
    return await _controller_op(target, params, "disable")


# ---- options ----------------------------------------------------------------------------------------
SET_OPTIONS_SPEC: dict[str, tuple[str, bool]] = {
    "action_on_timeout": ("timeout_action", False),
    "keep_alive_timeout_ms": ("u32", False),
    "timeout_us": ("u64", False),
    "timeout_admin_us": ("u64", False),
    "arbitration_burst": ("u32", False),
    "low_priority_weight": ("u32", False),
    "medium_priority_weight": ("u32", False),
    "high_priority_weight": ("u32", False),
    "io_queue_requests": ("u32", False),
    "nvme_adminq_poll_period_us": ("u64", False),
    "nvme_ioq_poll_period_us": ("u64", False),
    "delay_cmd_submit": ("bool", False),
    "transport_retry_count": ("u32", False),
    "bdev_retry_count": ("i32", False),
    "ctrlr_loss_timeout_sec": ("i32", False),
    "reconnect_delay_sec": ("u32", False),
    "fast_io_fail_timeout_sec": ("u32", False),
    "transport_ack_timeout": ("u8", False),
    "disable_auto_failback": ("bool", False),
    "generate_uuids": ("bool", False),
    "transport_tos": ("u8", False),
    "nvme_error_stat": ("bool", False),
    "io_path_stat": ("bool", False),
    "allow_accel_sequence": ("bool", False),
    "rdma_srq_size": ("u32", False),
    "rdma_max_cq_size": ("u32", False),
    "rdma_cm_event_timeout_ms": ("u16", False),
    "dhchap_digests": ("digests", False),
    "dhchap_dhgroups": ("dhgroups", False),
    "rdma_umr_per_io": ("bool", False),
    "tcp_connect_timeout_ms": ("u32", False),
    "enable_flush": ("bool", False),
    "multipath_opts": ("mp_opts", False),
}

SET_OPTIONS_CHECKS = {
    **MP_CHECKS,
    "timeout_action": lambda v: v in TIMEOUT_ACTIONS,
    "digests": lambda v: isinstance(v, list) and all(x in DIGESTS for x in v),
    "dhgroups": lambda v: isinstance(v, list) and all(x in DHGROUPS for x in v),
}


def _multipath_opts(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The multipath defaults as bdev_nvme_set_options keeps and reports them."""
    mp = {**current, **given}
    if mp.get("policy") != "active_active":
        return {"policy": "active_passive"}
    mp.setdefault("selector", "round_robin")
    if mp["selector"] == "round_robin":
        if mp.setdefault("min_io", 1) == 0:
            raise errno_error(EINVAL)
    else:
        mp.pop("min_io", None)
    return mp


@rpc("bdev_nvme_set_options")
async def bdev_nvme_set_options(target: Target, params: Any) -> Any:
    p = decode(params, SET_OPTIONS_SPEC, extra=SET_OPTIONS_CHECKS)
    st = target.state(NvmeState)
    new = {**st.options, **p}
    if "dhchap_digests" in p:
        new["dhchap_digests"] = [d for d in DIGESTS if d in p["dhchap_digests"]]
    if "dhchap_dhgroups" in p:
        new["dhchap_dhgroups"] = [g for g in DHGROUPS if g in p["dhchap_dhgroups"]]
    new["multipath_opts"] = _multipath_opts(st.options["multipath_opts"], p.get("multipath_opts", {}))
    if new["timeout_us"] == 0 and new["timeout_admin_us"] != 0:
        raise errno_error(EINVAL)
    if new["bdev_retry_count"] < -1:
        raise errno_error(EINVAL)
    if not resiliency_ok(new["ctrlr_loss_timeout_sec"], new["reconnect_delay_sec"], new["fast_io_fail_timeout_sec"]):
        raise errno_error(EINVAL)
    if st.ctrlrs:
        raise RpcError(-EPERM, "RPC not permitted with nvme controllers already attached")
    st.options = new
    return True


@rpc("bdev_nvme_set_hotplug")
async def bdev_nvme_set_hotplug(target: Target, params: Any) -> Any:
    try:
        p = decode(params, {"enable": ("bool", True), "period_us": ("u64", False)})
    except RpcError:
        raise RpcError(INVALID_PARAMS, "Invalid argument") from None
    period = p.get("period_us", 0) or 100000
    target.state(NvmeState).hotplug = {"period_us": min(period, 10000000), "enable": p["enable"]}
    return True


# ---- framework_get_config ---------------------------------------------------------------------------
def config_entries(target: Target) -> list[dict[str, Any]]:
    """What bdev_nvme contributes to framework_get_config bdev (bdev_nvme_config_json)."""
    st = target.state(NvmeState)
    out: list[dict[str, Any]] = [{"method": "bdev_nvme_set_options", "params": dict(st.options)}]
    for owner in st.ctrlrs.values():
        for ctrlr in owner.ctrlrs:
            for path in ctrlr.paths:
                out.append({"method": "bdev_nvme_attach_controller", "params": _attach_config(ctrlr, path)})
    out.append({"method": "bdev_nvme_set_hotplug", "params": dict(st.hotplug)})
    return out


def _attach_config(ctrlr: NvmeCtrlr, path: PathId) -> dict[str, Any]:
    o = ctrlr.opts
    params: dict[str, Any] = {"name": ctrlr.owner.name, **path.trid_json()}
    params["prchk_reftag"] = o.prchk_reftag
    params["prchk_guard"] = o.prchk_guard
    params["ctrlr_loss_timeout_sec"] = o.ctrlr_loss_timeout_sec
    params["reconnect_delay_sec"] = o.reconnect_delay_sec
    params["fast_io_fail_timeout_sec"] = o.fast_io_fail_timeout_sec
    for key in ("psk", "dhchap_key", "dhchap_ctrlr_key"):
        if getattr(o, key) is not None:
            params[key] = getattr(o, key)
    params["hostnqn"] = o.hostnqn
    params["hdgst"] = o.hdgst
    params["ddgst"] = o.ddgst
    if path.hostaddr:
        params["hostaddr"] = path.hostaddr
    if path.hostsvcid:
        params["hostsvcid"] = path.hostsvcid
    if o.is_multipath:
        params["multipath"] = "multipath"
    params["fabrics_connect_timeout_us"] = o.fabrics_connect_timeout_us
    params["num_io_queues"] = o.num_io_queues
    params["multipath_opts"] = {"policy": o.multipath_policy}
    return params


__all__ = ["NvmeBdev", "NvmeState", "config_entries"]
