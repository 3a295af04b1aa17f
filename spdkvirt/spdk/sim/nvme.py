"""NVMe/TCP initiator (bdev_nvme): attach/detach/get controllers, NVMe bdevs, reconnect and loss timers.

A controller connects to another simulator's NVMe/TCP listener over the wire in nvme_tcp.py; each
namespace becomes a bdev `<name>n<nsid>` whose uuid comes from the namespace NGUID (else its UUID)
and whose I/O travels to the exporter's bdev. When the connection is lost the controller follows
SPDK's bdev_nvme: it resets, retries every `reconnect_delay_sec`, fails queued I/O once
`fast_io_fail_timeout_sec` has passed and deletes itself (its bdevs are hot-removed) once
`ctrlr_loss_timeout_sec` has passed. A reconnect within that time is silent, whatever now sits
behind the namespace. Several controllers may share a name (multipath) or one controller may hold
alternate paths (failover).
"""

from __future__ import annotations

import asyncio
import errno
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from . import nvme_tcp
from .bdev import Bdev, io_types
from .decode import decode
from .errors import (
    EALREADY,
    EEXIST,
    EINVAL,
    EIO,
    ENODEV,
    EPERM,
    INVALID_PARAMS,
    RpcError,
    errno_error,
)
from .nvme_tcp import CtrlrData, HostConnection, NsData, WireError
from .registry import rpc
from .target import Target

ENOKEY = 126
ENXIO = errno.ENXIO
NAME_MAX = 512
TRADDR_MAX = 257
TRSVCID_MAX = 33
NQN_MAX = 224
HOSTADDR_MAX = 257
HOSTSVCID_MAX = 33
DEFAULT_CONNECT_TIMEOUT_US = 500000
RETRY_DELAY_S = 1.0  # bdev_nvme retries an I/O with no usable path every second

ADRFAMS = {"ipv4": "IPv4", "ipv6": "IPv6", "ib": "IB", "fc": "FC"}
TRTYPES = {"pcie": "PCIe", "rdma": "RDMA", "fc": "FC", "tcp": "TCP", "vfiouser": "VFIOUSER"}
TIMEOUT_ACTIONS = ("none", "reset", "abort")
DIGESTS = ("sha256", "sha384", "sha512")
DHGROUPS = ("null", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192")
POLICIES = ("active_passive", "active_active")
SELECTORS = ("round_robin", "queue_depth")
MP_MODES = ("failover", "multipath", "disable")


def _default_options() -> dict[str, Any]:
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
    """bdev_nvme of one target: options, this host's identity, controllers by name."""

    def __init__(self) -> None:
        self.options = _default_options()
        self.hostid = str(uuidlib.uuid4())
        self.hostnqn = f"nqn.2014-08.org.nvmexpress:uuid:{self.hostid}"
        self.ctrlrs: dict[str, NvmeBdevCtrlr] = {}
        self.hotplug_enabled = False
        self.hotplug_period_us = 100000


# ---- paths and options ----------------------------------------------------------------------------
@dataclass
class PathId:
    """A transport id plus the host side of the connection (spdk_nvme_path_id)."""

    trtype: str
    adrfam: str | None
    traddr: str
    trsvcid: str
    subnqn: str
    hostaddr: str = ""
    hostsvcid: str = ""
    last_failed: float = 0.0

    def trid_json(self) -> dict[str, str]:
        out: dict[str, str] = {"trtype": self.trtype}
        if self.adrfam is not None:
            out["adrfam"] = self.adrfam
        for key in ("traddr", "trsvcid", "subnqn"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out

    def same_trid(self, other: PathId) -> bool:
        """spdk_nvme_transport_id_compare."""
        return (
            self.trtype.lower() == other.trtype.lower()
            and self.adrfam == other.adrfam
            and self.traddr.lower() == other.traddr.lower()
            and self.trsvcid.lower() == other.trsvcid.lower()
            and self.subnqn == other.subnqn
        )

    def matches(self, want: PathId) -> bool:
        """nvme_path_id_compare: empty fields of `want` match anything."""
        checks = (
            (want.trtype, self.trtype.lower() == want.trtype.lower()),
            (want.adrfam, self.adrfam == want.adrfam),
            (want.traddr, self.traddr.lower() == want.traddr.lower()),
            (want.trsvcid, self.trsvcid.lower() == want.trsvcid.lower()),
            (want.subnqn, self.subnqn == want.subnqn),
            (want.hostaddr, self.hostaddr == want.hostaddr),
            (want.hostsvcid, self.hostsvcid == want.hostsvcid),
        )
        return all(ok for given, ok in checks if given)


@dataclass(frozen=True)
class CtrlrOpts:
    hostnqn: str
    ctrlr_loss_timeout_sec: int
    reconnect_delay_sec: int
    fast_io_fail_timeout_sec: int
    multipath: bool
    multipath_policy: str
    prchk_reftag: bool
    prchk_guard: bool
    hdgst: bool
    ddgst: bool
    fabrics_connect_timeout_us: int
    num_io_queues: int
    psk: str | None = None
    dhchap_key: str | None = None
    dhchap_ctrlr_key: str | None = None


def resiliency_ok(loss: int, delay: int, fast_fail: int) -> bool:
    """bdev_nvme_check_io_error_resiliency_params."""
    if loss < -1:
        return False
    if loss == -1:
        return delay != 0 and not (fast_fail != 0 and fast_fail < delay)
    if loss != 0:
        if delay == 0 or delay > loss:
            return False
        return fast_fail == 0 or delay <= fast_fail <= loss
    return delay == 0 and fast_fail == 0


# ---- namespaces, controllers, bdevs ---------------------------------------------------------------
class NvmeNs:
    """One namespace as one controller sees it (a path of an NVMe bdev)."""

    def __init__(self, ctrlr: NvmeCtrlr, data: NsData) -> None:
        self.ctrlr = ctrlr
        self.nsid = data.nsid
        self.data: NsData | None = data  # None: inactive since a reconnect (nvme_ns->ns == NULL)
        self.ana_state = data.ana_state
        self.ana_state_updating = False
        self.ana_transition_timedout = False
        self.anatt_timer: asyncio.TimerHandle | None = None
        self.bdev: NvmeBdev | None = None

    def set_ana_state(self, state: str) -> None:
        self.ana_state = state
        self.ana_state_updating = False
        if state in nvme_tcp.ANA_ACCESSIBLE:
            self.ana_transition_timedout = False
            if self.anatt_timer is not None:
                self.anatt_timer.cancel()
                self.anatt_timer = None
        elif self.anatt_timer is None:
            self.anatt_timer = asyncio.get_running_loop().call_later(
                self.ctrlr.cdata.anatt, self._transition_timedout
            )

    def _transition_timedout(self) -> None:
        self.anatt_timer = None
        self.ana_transition_timedout = True

    def stop_timers(self) -> None:
        if self.anatt_timer is not None:
            self.anatt_timer.cancel()
            self.anatt_timer = None

    def accessible(self) -> bool:
        """nvme_ns_is_accessible."""
        return self.data is not None and not self.ana_state_updating and self.ana_state in nvme_tcp.ANA_ACCESSIBLE

    def info_json(self) -> dict[str, Any] | None:
        """One entry of driver_specific.nvme (nvme_namespace_info_json)."""
        if self.data is None:
            return None
        cdata = self.ctrlr.cdata
        ns_data: dict[str, Any] = {"id": self.nsid}
        if cdata.ana_reporting:
            ns_data["ana_state"] = self.ana_state
        ns_data["can_share"] = True
        return {
            "trid": self.ctrlr.active_path.trid_json(),
            "ctrlr_data": {
                "cntlid": cdata.cntlid,
                "vendor_id": cdata.vendor_id,
                "model_number": cdata.model_number,
                "serial_number": cdata.serial_number,
                "firmware_revision": cdata.firmware_revision,
                "subnqn": cdata.subnqn,
                "oacs": {"security": 0, "format": 0, "firmware": 0, "ns_manage": 0},
                "multi_ctrlr": True,
                "ana_reporting": cdata.ana_reporting,
            },
            "vs": {"nvme_version": cdata.nvme_version},
            "ns_data": ns_data,
        }


def _uuid_of(data: NsData) -> str | None:
    if data.nguid.strip("0"):
        return str(uuidlib.UUID(hex=data.nguid))
    return data.uuid


class NvmeBdev(Bdev):
    """An NVMe namespace bdev; its I/O goes to the first usable path (active_passive)."""

    product_name = "NVMe disk"
    module = "nvme"

    def __init__(self, target: Target, name: str, ns: NvmeNs, cdata: CtrlrData, policy: str) -> None:
        data = ns.data
        assert data is not None
        super().__init__(target, name, data.num_blocks, data.block_size, _uuid_of(data))
        self.nsid = data.nsid
        self.paths: list[NvmeNs] = [ns]
        self.policy = policy
        self.io_support = io_types(
            read=True, write=True, unmap=cdata.unmap, flush=True, reset=True, nvme_admin=True,
            nvme_io=True, write_zeroes=cdata.write_zeroes, compare=True, compare_and_write=True,
            abort=True, copy=True,
        )
        self._layout = {
            "preferred_write_alignment": data.write_alignment,
            "preferred_write_granularity": data.write_granularity,
            "optimal_write_size": data.optimal_write_size,
            "preferred_unmap_alignment": data.unmap_alignment,
            "preferred_unmap_granularity": data.unmap_granularity,
        }

    @property
    def io(self) -> dict[str, bool]:  # type: ignore[override]
        return self.io_support

    def layout(self) -> dict[str, int]:
        return dict(self._layout)

    def memory_domains(self) -> list[dict[str, str]] | None:
        return [{"dma_device_type": "DMA"}]

    def driver_specific(self) -> dict[str, Any]:
        infos = [i for i in (ns.info_json() for ns in self.paths) if i is not None]
        return {"nvme": infos, "mp_policy": self.policy}

    # ---- data path: bdev_nvme_submit_request and its retries ----------------------------------
    async def do_read(self, offset: int, length: int) -> bytes:
        return await self._submit(offset, length, None)

    async def do_write(self, offset: int, data: bytes) -> None:
        await self._submit(offset, len(data), data)

    def _find_path(self) -> NvmeNs | None:
        usable = [ns for ns in self.paths if ns.accessible() and ns.ctrlr.connected()]
        for ns in usable:
            if ns.ana_state == "optimized":
                return ns
        return usable[0] if usable else None

    def _may_become_available(self) -> bool:
        """any_io_path_may_become_available."""
        for ns in self.paths:
            if ns.ana_transition_timedout:
                continue
            if ns.ctrlr.connected() or not ns.ctrlr.is_failed():
                return True
        return False

    async def _submit(self, offset: int, length: int, data: bytes | None) -> bytes:
        retry_limit = self.target.state(NvmeState).options["bdev_retry_count"]
        retries = 0
        while True:
            if self.removed:
                raise errno_error(EIO)
            ns = self._find_path()
            if ns is None:
                # -ENXIO: queued for a second while some path may come back
                if retry_limit == 0 or not self._may_become_available():
                    raise errno_error(EIO)
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            status, out = await ns.ctrlr.submit(self.nsid, offset, length, data)
            if status == nvme_tcp.OK:
                return out
            if status in (nvme_tcp.INVALID_NAMESPACE, nvme_tcp.LBA_OUT_OF_RANGE):
                raise errno_error(EIO)  # do-not-retry
            if retry_limit != -1 and retries >= retry_limit:
                raise errno_error(EIO)
            if status in (nvme_tcp.ANA_INACCESSIBLE, "aborted") or not ns.accessible():
                if status == nvme_tcp.ANA_INACCESSIBLE:
                    ns.ctrlr.refresh_ana(ns)
                if not self._may_become_available():
                    raise errno_error(EIO)
                await asyncio.sleep(0)
                continue
            retries += 1


class NvmeCtrlr:
    """One NVMe controller (nvme_ctrlr): its paths, connection, namespaces and reset state."""

    def __init__(self, target: Target, owner: NvmeBdevCtrlr, path: PathId, opts: CtrlrOpts) -> None:
        self.target = target
        self.owner = owner
        self.paths: list[PathId] = [path]
        self.opts = opts
        self.conn: HostConnection | None = None
        self.cdata: CtrlrData = CtrlrData(0, path.subnqn, "", "", "", "", "", False, 0, False, False)
        self.namespaces: dict[int, NvmeNs] = {}
        self.resetting = False
        self.reconnect_is_delayed = False
        self.destruct = False
        self.fast_io_fail_timedout = False
        self.lib_failed = False  # spdk_nvme_ctrlr_is_failed
        self.reset_start: float | None = None
        self.recovery: asyncio.Task[None] | None = None

    # ---- state ----------------------------------------------------------------------------------
    @property
    def active_path(self) -> PathId:
        return self.paths[0]

    def state_str(self) -> str:
        if self.destruct:
            return "deleting"
        if self.lib_failed:
            return "failed"
        if self.resetting:
            return "resetting"
        if self.reconnect_is_delayed:
            return "reconnect_is_delayed"
        return "enabled"

    def connected(self) -> bool:
        """The I/O qpair is up (nvme_qpair_is_connected)."""
        return self.conn is not None and not self.conn.lost.is_set() and not self.resetting

    def is_failed(self) -> bool:
        """nvme_ctrlr_is_failed: may I/O wait for this controller to come back?"""
        if self.destruct or self.fast_io_fail_timedout:
            return True
        if self.resetting:
            return self.opts.reconnect_delay_sec == 0
        if self.reconnect_is_delayed:
            return False
        return self.lib_failed

    def info_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state_str(), "trid": self.active_path.trid_json()}
        if len(self.paths) > 1:
            out["alternate_trids"] = [p.trid_json() for p in self.paths[1:]]
        out["cntlid"] = self.cdata.cntlid
        out["host"] = {
            "nqn": self.opts.hostnqn,
            "addr": self.active_path.hostaddr,
            "svcid": self.active_path.hostsvcid,
            "no_shn_notification": False,
        }
        return out

    def _elapsed(self) -> int:
        if self.reset_start is None:
            return 0
        return int(asyncio.get_running_loop().time() - self.reset_start)

    def _loss_timed_out(self) -> bool:
        loss = self.opts.ctrlr_loss_timeout_sec
        return loss not in (0, -1) and self._elapsed() >= loss

    # ---- connection -----------------------------------------------------------------------------
    async def open(self) -> HostConnection:
        """Connect the active path; raises ConnectRejected."""
        st = self.target.state(NvmeState)
        path = self.active_path
        timeout_us = self.opts.fabrics_connect_timeout_us or DEFAULT_CONNECT_TIMEOUT_US
        return await nvme_tcp.connect(
            path.traddr, path.trsvcid, path.subnqn, self.opts.hostnqn, st.hostid,
            hostaddr=path.hostaddr or None,
            kato_ms=st.options["keep_alive_timeout_ms"],
            limit_s=max(timeout_us / 1e6, 1.0),
        )

    def adopt(self, conn: HostConnection) -> None:
        """Take a fresh connection: controller data, liveness and event callbacks."""
        self.conn = conn
        self.cdata = conn.ctrlr
        conn.on_change = self._on_event
        self.target.spawn(self._watch(conn))

    async def _watch(self, conn: HostConnection) -> None:
        await conn.lost.wait()
        if self.conn is conn and not self.destruct:
            self.start_failover()

    def _on_event(self, conn: HostConnection) -> None:
        if self.conn is conn and not self.destruct:
            self.cdata = conn.ctrlr
            self.target.spawn(self.populate(conn.namespaces))

    def refresh_ana(self, ns: NvmeNs) -> None:
        """A path error: re-read the ANA states (nvme_ctrlr_read_ana_log_page)."""
        if ns.ana_state_updating or self.conn is None:
            return
        ns.ana_state_updating = True
        self.target.spawn(self._read_ana(self.conn))

    async def _read_ana(self, conn: HostConnection) -> None:
        try:
            current = await conn.identify()
        except WireError:
            return
        if self.conn is not conn:
            return
        for nsid, ns in self.namespaces.items():
            data = current.get(nsid)
            if data is not None and ns.data is not None:
                ns.set_ana_state(data.ana_state)
            else:
                ns.ana_state_updating = False

    async def submit(self, nsid: int, offset: int, length: int, data: bytes | None) -> tuple[str, bytes]:
        conn = self.conn
        if conn is None or not self.connected():
            return "aborted", b""
        try:
            if data is None:
                return await conn.read(nsid, offset, length)
            return await conn.write(nsid, offset, data), b""
        except WireError:
            return "aborted", b""

    # ---- namespaces -------------------------------------------------------------------------------
    async def populate(self, current: dict[int, NsData]) -> None:
        """A namespace change (AEN): update, add and remove namespaces."""
        for nsid, ns in list(self.namespaces.items()):
            data = current.get(nsid)
            if data is None:
                await self.depopulate(ns)
                continue
            ns.data = data
            ns.set_ana_state(data.ana_state)
            bdev = ns.bdev
            if bdev is not None and not bdev.removed and bdev.num_blocks != data.num_blocks:
                bdev.resize(data.num_blocks)
        for nsid, data in sorted(current.items()):
            if nsid not in self.namespaces and not self.destruct:
                await self.add_ns(data)

    async def add_ns(self, data: NsData) -> None:
        ns = NvmeNs(self, data)
        bdev = self.owner.bdevs.get(data.nsid)
        if bdev is None:
            bdev = NvmeBdev(self.target, f"{self.owner.name}n{data.nsid}", ns, self.cdata,
                            self.opts.multipath_policy)
            try:
                self.target.check_new(bdev.name, bdev.uuid, [])
            except RpcError:
                return
            ns.bdev = bdev
            self.namespaces[data.nsid] = ns
            self.owner.bdevs[data.nsid] = bdev
            await self.target.register_bdev(bdev)
            return
        first = bdev.paths[0].data if bdev.paths else None
        if first is not None and not first.same_namespace(data):
            return  # "Namespaces are not identical"
        ns.bdev = bdev
        bdev.paths.append(ns)
        self.namespaces[data.nsid] = ns

    async def depopulate(self, ns: NvmeNs) -> None:
        ns.stop_timers()
        self.namespaces.pop(ns.nsid, None)
        bdev = ns.bdev
        ns.bdev = None
        if bdev is None:
            return
        if ns in bdev.paths:
            bdev.paths.remove(ns)
        if not bdev.paths:
            if self.owner.bdevs.get(bdev.nsid) is bdev:
                del self.owner.bdevs[bdev.nsid]
            await self.target.unregister_bdev(bdev)

    def check_namespaces(self, current: dict[int, NsData]) -> None:
        """After a reconnect: namespaces no longer active lose their data (nvme_ctrlr_check_namespaces)."""
        for nsid, ns in self.namespaces.items():
            data = current.get(nsid)
            if data is None:
                ns.data = None
            else:
                ns.set_ana_state(data.ana_state)

    # ---- reset, reconnect, delete ---------------------------------------------------------------------
    def start_failover(self, remove: bool = False) -> None:
        """The connection broke: reset the controller (bdev_nvme_start_ctrlr_failover).

        With `remove` the active path is dropped (detach of that path) and the next one is used.
        """
        if self.destruct or self.resetting:
            return
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()
        if remove:
            self.paths.pop(0)
        else:
            self._failover_trid(start=True)
        if self.reconnect_is_delayed:
            return  # the pending reconnect takes the next path
        self.resetting = True
        if self.reset_start is None:
            self.reset_start = asyncio.get_running_loop().time()
        self.recovery = self.target.spawn(self._recover())

    def _failover_trid(self, start: bool) -> bool:
        """Mark the active path failed and move to the next one; True to try it now."""
        loop = asyncio.get_running_loop()
        path = self.paths[0]
        path.last_failed = loop.time()
        if len(self.paths) == 1:
            return False
        if not start and self.opts.reconnect_delay_sec == 0:
            return False
        self.paths = [*self.paths[1:], path]
        nxt = self.paths[0]
        if start or nxt.last_failed == 0:
            return True
        return loop.time() > nxt.last_failed + self.opts.reconnect_delay_sec

    async def _reconnect_once(self) -> bool:
        if self._loss_timed_out():
            return False
        try:
            conn = await self.open()
        except nvme_tcp.ConnectRejected:
            return False
        if self.destruct:
            conn.close()
            return False
        self.adopt(conn)
        self.check_namespaces(conn.namespaces)
        return True

    async def _recover(self) -> None:
        poll_s = self.target.state(NvmeState).options["nvme_adminq_poll_period_us"] / 1e6
        while not self.destruct:
            if await self._reconnect_once():
                self.active_path.last_failed = 0.0
                self.resetting = False
                self.reset_start = None
                return
            if self._failover_trid(start=False):
                continue
            fast_fail = self.opts.fast_io_fail_timeout_sec
            if fast_fail and self._elapsed() >= fast_fail:
                self.fast_io_fail_timedout = True
            self.resetting = False
            if self.opts.reconnect_delay_sec == 0:
                # the controller stays failed; the admin queue poller resets it again
                self.lib_failed = True
                await asyncio.sleep(max(poll_s, 0.001))
                self._failover_trid(start=True)
                self.lib_failed = False
            elif self._loss_timed_out():
                await self.delete()
                return
            else:
                self.reconnect_is_delayed = True
                await asyncio.sleep(self.opts.reconnect_delay_sec)
                self.reconnect_is_delayed = False
            if self.destruct:
                return
            self.resetting = True

    async def delete(self) -> None:
        """bdev_nvme_start_ctrlr_destruct: hot-remove the namespaces' bdevs, then go away."""
        if self.destruct:
            return
        self.destruct = True
        self.resetting = False
        self.reconnect_is_delayed = False
        if self.recovery is not None and self.recovery is not asyncio.current_task():
            self.recovery.cancel()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        for ns in list(self.namespaces.values()):
            await self.depopulate(ns)
        self.owner.remove(self)


@dataclass
class NvmeBdevCtrlr:
    """Controllers sharing one name (nvme_bdev_ctrlr) and the bdevs named after it."""

    target: Target
    name: str
    ctrlrs: list[NvmeCtrlr] = field(default_factory=list)
    bdevs: dict[int, NvmeBdev] = field(default_factory=dict)

    def remove(self, ctrlr: NvmeCtrlr) -> None:
        if ctrlr in self.ctrlrs:
            self.ctrlrs.remove(ctrlr)
        st = self.target.state(NvmeState)
        if not self.ctrlrs and st.ctrlrs.get(self.name) is self:
            del st.ctrlrs[self.name]

    def info_json(self) -> dict[str, Any]:
        return {"name": self.name, "ctrlrs": [c.info_json() for c in self.ctrlrs]}


# ---- RPCs -----------------------------------------------------------------------------------------
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


def _einval(message: str) -> RpcError:
    return RpcError(-EINVAL, message)


def _parse_path(p: dict[str, Any]) -> PathId:
    """The transport id checks bdev_nvme_attach/detach_controller make, in SPDK's order."""
    trtype = p.get("trtype")
    if trtype is not None and len(trtype) >= 32:
        raise _einval(f"Failed to parse trtype: {trtype}")
    traddr = p.get("traddr", "")
    if len(traddr) >= TRADDR_MAX:
        raise _einval(f"traddr too long: {traddr}")
    adrfam = p.get("adrfam")
    if adrfam is not None:
        if adrfam.lower() not in ADRFAMS:
            raise _einval(f"Failed to parse adrfam: {adrfam}")
        adrfam = ADRFAMS[adrfam.lower()]
    trsvcid = p.get("trsvcid", "")
    if len(trsvcid) >= TRSVCID_MAX:
        raise _einval(f"trsvcid too long: {trsvcid}")
    subnqn = p.get("subnqn", "")
    if len(subnqn) >= NQN_MAX:
        raise _einval(f"subnqn too long: {subnqn}")
    hostaddr = p.get("hostaddr", "")
    if len(hostaddr) >= HOSTADDR_MAX:
        raise _einval(f"hostaddr too long: {hostaddr}")
    hostsvcid = p.get("hostsvcid", "")
    if len(hostsvcid) >= HOSTSVCID_MAX:
        raise _einval(f"hostsvcid too long: {hostsvcid}")
    kind = "" if trtype is None else TRTYPES.get(trtype.lower(), trtype.upper())
    return PathId(kind, adrfam, traddr, trsvcid, subnqn, hostaddr, hostsvcid)


@rpc("bdev_nvme_attach_controller")
async def bdev_nvme_attach_controller(target: Target, params: Any) -> Any:
    p = decode(params, ATTACH_SPEC, extra=MP_CHECKS)
    st = target.state(NvmeState)
    opts = st.options
    if p.get("max_bdevs", 128) == 0:
        raise _einval("max_bdevs cannot be zero")
    path = _parse_path(p)
    hostnqn = p.get("hostnqn", st.hostnqn)
    if len(hostnqn) >= NQN_MAX:
        raise _einval(f"hostnqn too long: {hostnqn}")
    mode = p.get("multipath", "multipath")
    prchk = p.get("prchk_reftag", False) or p.get("prchk_guard", False)
    name = p["name"]
    owner = st.ctrlrs.get(name)
    if owner is not None and owner.ctrlrs:
        first = owner.ctrlrs[0]
        active = first.active_path
        if mode == "disable":
            raise RpcError(-EALREADY, f"A controller named {name} already exists and multipath is disabled")
        if (active.traddr, active.trsvcid, active.hostaddr, active.hostsvcid) == (
            path.traddr, path.trsvcid, path.hostaddr, path.hostsvcid
        ):
            raise RpcError(
                -EALREADY, f"A controller named {name} already exists with the specified network path"
            )
        if path.subnqn != active.subnqn:
            raise _einval(f"A controller named {name} already exists, but uses a different subnqn")
        if hostnqn != first.opts.hostnqn:
            raise _einval(f"A controller named {name} already exists, but uses a different hostnqn")
        if prchk:
            raise _einval(f"A controller named {name} already exists. To add a path, do not specify PI options.")
    num_io_queues = p.get("num_io_queues", 1024)
    if num_io_queues == 0 or num_io_queues > 65536:
        raise _einval("num_io_queues out of bounds, min: 1 max: 65536")
    mp_opts = p.get("multipath_opts", opts["multipath_opts"])
    ctrlr_opts = CtrlrOpts(
        hostnqn=hostnqn,
        ctrlr_loss_timeout_sec=p.get("ctrlr_loss_timeout_sec", opts["ctrlr_loss_timeout_sec"]),
        reconnect_delay_sec=p.get("reconnect_delay_sec", opts["reconnect_delay_sec"]),
        fast_io_fail_timeout_sec=p.get("fast_io_fail_timeout_sec", opts["fast_io_fail_timeout_sec"]),
        multipath=mode == "multipath",
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
    return await _create(target, name, path, ctrlr_opts, p.get("max_bdevs", 128))


async def _create(target: Target, name: str, path: PathId, opts: CtrlrOpts, max_bdevs: int) -> list[str]:
    """spdk_bdev_nvme_create and its completion."""
    st = target.state(NvmeState)
    for other in st.ctrlrs.values():
        for c in other.ctrlrs:
            if c.active_path.same_trid(path) and c.opts.hostnqn == opts.hostnqn:
                raise errno_error(EEXIST)
    if not name or len(name) >= NAME_MAX:
        raise errno_error(EINVAL)
    if not resiliency_ok(opts.ctrlr_loss_timeout_sec, opts.reconnect_delay_sec, opts.fast_io_fail_timeout_sec):
        raise errno_error(EINVAL)
    for key in (opts.psk, opts.dhchap_key, opts.dhchap_ctrlr_key):
        if key is not None:
            raise RpcError(-ENOKEY, "Required key not available")  # no such key in the keyring
    owner = st.ctrlrs.get(name)
    if owner is not None and owner.ctrlrs and owner.ctrlrs[0].opts.multipath != opts.multipath:
        raise errno_error(EINVAL)
    if path.trtype != "TCP":
        raise errno_error(ENODEV)
    if owner is None:
        owner = NvmeBdevCtrlr(target, name)
    ctrlr = NvmeCtrlr(target, owner, path, opts)
    try:
        if path.adrfam not in ("IPv4", "IPv6"):
            raise nvme_tcp.ConnectRejected("Unhandled ADRFAM")
        conn = await ctrlr.open()
    except nvme_tcp.ConnectRejected:
        raise errno_error(EIO) from None
    if owner.ctrlrs and not opts.multipath:
        return await _add_failover_path(owner, conn, path)
    clash = any(
        c.cdata.cntlid == conn.ctrlr.cntlid or c.opts.multipath_policy != opts.multipath_policy
        for c in owner.ctrlrs
    )
    if clash:  # bdev_nvme_check_multipath
        conn.close()
        raise errno_error(EINVAL)
    st.ctrlrs.setdefault(name, owner)
    owner.ctrlrs.append(ctrlr)
    ctrlr.adopt(conn)
    for data in sorted(conn.namespaces.values(), key=lambda d: d.nsid):
        await ctrlr.add_ns(data)
    names = [ns.bdev.name for ns in sorted(ctrlr.namespaces.values(), key=lambda n: n.nsid) if ns.bdev]
    if len(names) > max_bdevs:
        raise RpcError(-errno.ERANGE, "Numerical result out of range")
    return names


async def _add_failover_path(owner: NvmeBdevCtrlr, conn: HostConnection, path: PathId) -> list[str]:
    """bdev_nvme_add_secondary_trid: check the new path reaches the same namespaces, keep it aside."""
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


@rpc("bdev_nvme_detach_controller")
async def bdev_nvme_detach_controller(target: Target, params: Any) -> Any:
    p = decode(params, {
        "name": ("str", True), "trtype": ("str", False), "traddr": ("str", False), "adrfam": ("str", False),
        "trsvcid": ("str", False), "subnqn": ("str", False), "hostaddr": ("str", False),
        "hostsvcid": ("str", False),
    })
    want = _parse_path(p)
    st = target.state(NvmeState)
    owner = st.ctrlrs.get(p["name"])
    if owner is None:
        raise errno_error(ENODEV)
    rc = -ENXIO
    for ctrlr in list(owner.ctrlrs):
        removed = [q for q in ctrlr.paths[1:] if q.matches(want)]
        for q in removed:
            ctrlr.paths.remove(q)
        if removed:
            rc = 0
        if not ctrlr.active_path.matches(want):
            continue
        rc = 0
        if len(ctrlr.paths) == 1:
            await ctrlr.delete()
        elif ctrlr.resetting:
            raise RpcError(-errno.EBUSY, "Device or resource busy")
        else:
            ctrlr.start_failover(remove=True)
    if rc:
        raise errno_error(ENXIO)
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


@rpc("bdev_nvme_set_options")
async def bdev_nvme_set_options(target: Target, params: Any) -> Any:
    p = decode(params, SET_OPTIONS_SPEC, extra=SET_OPTIONS_CHECKS)
    st = target.state(NvmeState)
    new = {**st.options, **p}
    if "dhchap_digests" in p:
        new["dhchap_digests"] = [d for d in DIGESTS if d in p["dhchap_digests"]]
    if "dhchap_dhgroups" in p:
        new["dhchap_dhgroups"] = [g for g in DHGROUPS if g in p["dhchap_dhgroups"]]
    mp = {**st.options["multipath_opts"], **p.get("multipath_opts", {})}
    if mp.get("policy") == "active_active":
        mp.setdefault("selector", "round_robin")
        if mp["selector"] == "round_robin":
            if mp.setdefault("min_io", 1) == 0:
                raise errno_error(EINVAL)
        else:
            mp.pop("min_io", None)
    else:
        mp = {"policy": "active_passive"}
    new["multipath_opts"] = mp
    if new["timeout_us"] == 0 and new["timeout_admin_us"] != 0:
        raise errno_error(EINVAL)
    if new["bdev_retry_count"] < -1:
        raise errno_error(EINVAL)
    if not resiliency_ok(
        new["ctrlr_loss_timeout_sec"], new["reconnect_delay_sec"], new["fast_io_fail_timeout_sec"]
    ):
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
    st = target.state(NvmeState)
    st.hotplug_enabled = p["enable"]
    period = p.get("period_us", 0) or 100000
    st.hotplug_period_us = min(period, 10000000)
    return True


def config_entries(target: Target) -> list[dict[str, Any]]:
    """What bdev_nvme contributes to framework_get_config bdev (bdev_nvme_config_json)."""
    st = target.state(NvmeState)
    out: list[dict[str, Any]] = [{"method": "bdev_nvme_set_options", "params": dict(st.options)}]
    for owner in st.ctrlrs.values():
        for ctrlr in owner.ctrlrs:
            for path in ctrlr.paths:
                out.append({"method": "bdev_nvme_attach_controller", "params": _attach_config(ctrlr, path)})
    out.append({
        "method": "bdev_nvme_set_hotplug",
        "params": {"period_us": st.hotplug_period_us, "enable": st.hotplug_enabled},
    })
    return out


def _attach_config(ctrlr: NvmeCtrlr, path: PathId) -> dict[str, Any]:
    o = ctrlr.opts
    params: dict[str, Any] = {"name": ctrlr.owner.name, **path.trid_json()}
    params.update({
        "prchk_reftag": o.prchk_reftag,
        "prchk_guard": o.prchk_guard,
        "ctrlr_loss_timeout_sec": o.ctrlr_loss_timeout_sec,
        "reconnect_delay_sec": o.reconnect_delay_sec,
        "fast_io_fail_timeout_sec": o.fast_io_fail_timeout_sec,
    })
    params.update({"hostnqn": o.hostnqn, "hdgst": o.hdgst, "ddgst": o.ddgst})
    if path.hostaddr:
        params["hostaddr"] = path.hostaddr
    if path.hostsvcid:
        params["hostsvcid"] = path.hostsvcid
    if o.multipath:
        params["multipath"] = "multipath"
    params["fabrics_connect_timeout_us"] = o.fabrics_connect_timeout_us
    params["num_io_queues"] = o.num_io_queues
    params["multipath_opts"] = {"policy": o.multipath_policy}
    return params

