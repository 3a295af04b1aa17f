"""NVMe controllers and namespace bdevs of the initiator (bdev_nvme's nvme_ctrlr, nvme_ns, nvme_bdev).

A controller owns one connection (nvme_host.HostConnection) to the active path of its transport ids
and follows SPDK's reset logic when it breaks: a reconnect attempt at once, then one every
`reconnect_delay_sec`; queued I/O fails once `fast_io_fail_timeout_sec` has passed, and the
controller deletes itself (hot-removing its bdevs) once `ctrlr_loss_timeout_sec` has passed. A
reconnect in time is silent: it does not check what now sits behind a namespace. With
`reconnect_delay_sec` 0 the controller stays failed and is reset again at every admin queue poll.

An NVMe bdev sends I/O down the first usable path (active_passive); with none it waits and retries
every second while some path may come back (any_io_path_may_become_available), else fails.
The RPCs that drive all this live in nvme.py.
"""

from __future__ import annotations

import asyncio
import errno
import uuid as uuidlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from . import nvme_host, nvme_wire
from .bdev import Bdev, io_types
from .errors import EBUSY, EIO, EPERM, RpcError, errno_error
from .nvme_host import HostConnection
from .nvme_wire import CtrlrData, HostAuth, NsData, WireError
from .target import Target

DEFAULT_CONNECT_TIMEOUT_US = 500000
ENXIO = errno.ENXIO
RETRY_DELAY_S = 1.0  # bdev_nvme retries an I/O with no usable path every second


@dataclass(frozen=True)
class HostEnv:
    """What every controller takes from this host: its identity and bdev_nvme's global options."""

    hostid: str
    keep_alive_timeout_ms: int
    adminq_poll_period_us: int
    bdev_retry_count: int


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
    """Per-controller options of bdev_nvme_attach_controller (also read by framework_get_config)."""

    hostnqn: str
    ctrlr_loss_timeout_sec: int
    reconnect_delay_sec: int
    fast_io_fail_timeout_sec: int
    multipath: str  # "multipath", "failover" or "disable"
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

    @property
    def is_multipath(self) -> bool:
        return self.multipath == "multipath"


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
        self.ana_state = "optimized"
        self.ana_state_updating = False
        self.ana_transition_timedout = False
        self.anatt_timer: asyncio.TimerHandle | None = None
        self.bdev: NvmeBdev | None = None
        self.set_ana_state(data.ana_state)

    def set_ana_state(self, state: str) -> None:
        self.ana_state = state
        self.ana_state_updating = False
        if state in nvme_wire.ANA_ACCESSIBLE:
            self.ana_transition_timedout = False
            if self.anatt_timer is not None:
                self.anatt_timer.cancel()
                self.anatt_timer = None
        elif self.anatt_timer is None:
            self.anatt_timer = asyncio.get_running_loop().call_later(self.ctrlr.cdata.anatt, self._transition_timedout)

    def _transition_timedout(self) -> None:
        self.anatt_timer = None
        self.ana_transition_timedout = True

    def stop_timers(self) -> None:
        if self.anatt_timer is not None:
            self.anatt_timer.cancel()
            self.anatt_timer = None

    def accessible(self) -> bool:
        """nvme_ns_is_accessible."""
        return self.data is not None and not self.ana_state_updating and self.ana_state in nvme_wire.ANA_ACCESSIBLE

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


class IoFailed(RpcError):
    """An I/O that completed in error; `io_status` names the bdev I/O status for the statistics."""

    def __init__(self, status: str) -> None:
        err = errno_error(EIO)
        super().__init__(err.code, err.message)
        self.io_status = status


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
        self.retry_limit = ns.ctrlr.env.bdev_retry_count
        self.io_support = io_types(
            read=True,
            write=True,
            unmap=cdata.unmap,
            flush=True,
            reset=True,
            nvme_admin=True,
            nvme_io=True,
            write_zeroes=cdata.write_zeroes,
            compare=True,
            compare_and_write=True,
            abort=True,
            copy=True,
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
        retry_limit = self.retry_limit
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
            if status == nvme_wire.OK:
                return out
            if status in (nvme_wire.INVALID_NAMESPACE, nvme_wire.LBA_OUT_OF_RANGE):
                raise IoFailed("nvme_error")  # do-not-retry
            if retry_limit != -1 and retries >= retry_limit:
                raise IoFailed("nvme_error")
            if status in (nvme_wire.ANA_INACCESSIBLE, "aborted") or not ns.accessible():
                if status == nvme_wire.ANA_INACCESSIBLE:
                    ns.ctrlr.refresh_ana(ns)
                if not self._may_become_available():
                    raise IoFailed("failed" if status == "aborted" else "nvme_error")
                await asyncio.sleep(0)
                continue
            retries += 1


class NvmeCtrlr:
    """One NVMe controller (nvme_ctrlr): its paths, connection, namespaces and reset state."""

    def __init__(
        self, target: Target, owner: NvmeBdevCtrlr, path: PathId, opts: CtrlrOpts, env: HostEnv, auth: HostAuth
    ) -> None:
        self.target = target
        self.owner = owner
        self.paths: list[PathId] = [path]
        self.opts = opts
        self.env = env
        self.auth = auth
        self.conn: HostConnection | None = None
        self.cdata: CtrlrData = CtrlrData(0, path.subnqn, "", "", "", "", "", False, 0, False, False)
        self.namespaces: dict[int, NvmeNs] = {}
        self.resetting = False
        self.reconnect_is_delayed = False
        self.destruct = False
        self.fast_io_fail_timedout = False
        self.lib_failed = False  # spdk_nvme_ctrlr_is_failed
        self.disabled = False
        self.reset_start: float | None = None
        self.recovery: asyncio.Task[None] | None = None
        self.populating = asyncio.Lock()
        self.op_done: asyncio.Future[int] | None = None  # a reset or enable asked for by RPC

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
        if self.disabled:
            return "disabled"
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
        return self.disabled or self.lib_failed

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
        path = self.active_path
        timeout_us = self.opts.fabrics_connect_timeout_us or DEFAULT_CONNECT_TIMEOUT_US
        return await nvme_host.connect(
            path.traddr,
            path.trsvcid,
            path.subnqn,
            self.opts.hostnqn,
            self.env.hostid,
            hostaddr=path.hostaddr or None,
            kato_ms=self.env.keep_alive_timeout_ms,
            auth=self.auth,
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
            self.target.spawn(self.populate(dict(conn.namespaces)))

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
        """A namespace change (AEN): update, add and remove namespaces, one event at a time."""
        async with self.populating:
            await self._populate(current)

    async def _populate(self, current: dict[int, NsData]) -> None:
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
            bdev = NvmeBdev(self.target, f"{self.owner.name}n{data.nsid}", ns, self.cdata, self.opts.multipath_policy)
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

    # ---- operations asked for by RPC (nvme_ctrlr_op) ----------------------------------------------
    def _finish_op(self, rc: int) -> None:
        done, self.op_done = self.op_done, None
        if done is not None and not done.done():
            done.set_result(rc)

    def _drop_conn(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()

    def _stop_delayed_reconnect(self) -> None:
        if self.reconnect_is_delayed and self.recovery is not None:
            self.recovery.cancel()
        self.reconnect_is_delayed = False

    def _op_refused(self) -> int:
        """-ENXIO while being deleted, -EBUSY while a reset runs, else 0."""
        if self.destruct:
            return -ENXIO
        if self.resetting:
            return -EBUSY
        return 0

    async def reset(self) -> int:
        """bdev_nvme_reset_ctrlr: disconnect and reconnect now; 0 or a negative errno."""
        busy = self._op_refused()
        if busy:
            return busy
        if self.disabled:
            return 0
        return await self._run_op(enable=False)

    async def enable(self) -> int:
        """bdev_nvme_enable_ctrlr: reconnect a disabled controller."""
        busy = self._op_refused()
        if busy:
            return busy
        if not self.disabled:
            return 0
        return await self._run_op(enable=True)

    async def disable(self) -> int:
        """bdev_nvme_disable_ctrlr: disconnect and stay so until enabled."""
        busy = self._op_refused()
        if busy:
            return busy
        if self.disabled:
            return 0
        self._stop_delayed_reconnect()
        self.reset_start = asyncio.get_running_loop().time()
        self.disabled = True
        if self.conn is not None:
            conn, self.conn = self.conn, None
            await conn.shutdown()
        return 0

    async def _run_op(self, enable: bool) -> int:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.op_done = done
        self._stop_delayed_reconnect()
        if enable:
            self.disabled = False
            self.reset_start = asyncio.get_running_loop().time()
        elif self.reset_start is None:
            self.reset_start = asyncio.get_running_loop().time()
        self.resetting = True
        self._drop_conn()
        self.recovery = self.target.spawn(self._recover())
        return await done

    async def _reconnect_once(self) -> bool:
        if self._loss_timed_out():
            return False
        try:
            conn = await self.open()
        except nvme_wire.ConnectRejected:
            return False
        if self.destruct:
            conn.close()
            return False
        self.adopt(conn)
        self.check_namespaces(conn.namespaces)
        return True

    async def _recover(self) -> None:
        poll_s = self.env.adminq_poll_period_us / 1e6
        while not self.destruct:
            if await self._reconnect_once():
                self.active_path.last_failed = 0.0
                self.resetting = False
                self.reset_start = None
                self._finish_op(0)
                return
            if self._failover_trid(start=False):
                continue
            fast_fail = self.opts.fast_io_fail_timeout_sec
            if fast_fail and self._elapsed() >= fast_fail:
                self.fast_io_fail_timedout = True
            self.resetting = False
            self._finish_op(-EPERM)
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
        self._finish_op(-ENXIO)
        if self.recovery is not None and self.recovery is not asyncio.current_task():
            self.recovery.cancel()
        if self.conn is not None:
            conn, self.conn = self.conn, None
            await conn.shutdown()
        for ns in list(self.namespaces.values()):
            await self.depopulate(ns)
        self.owner.remove(self)


@dataclass
class NvmeBdevCtrlr:
    """Controllers sharing one name (nvme_bdev_ctrlr) and the bdevs named after it."""

    target: Target
    name: str
    registry: MutableMapping[str, NvmeBdevCtrlr]  # where it is listed by name while it has controllers
    ctrlrs: list[NvmeCtrlr] = field(default_factory=list)
    bdevs: dict[int, NvmeBdev] = field(default_factory=dict)

    def remove(self, ctrlr: NvmeCtrlr) -> None:
        if ctrlr in self.ctrlrs:
            self.ctrlrs.remove(ctrlr)
        if not self.ctrlrs and self.registry.get(self.name) is self:
            del self.registry[self.name]

    def info_json(self) -> dict[str, Any]:
        return {"name": self.name, "ctrlrs": [c.info_json() for c in self.ctrlrs]}
