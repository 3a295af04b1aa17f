"""The exporting end of the NVMe/TCP wire: listeners serving the NVMe-oF target's namespaces.

Interface used by nvmf.py (the target side of NVMe-oF):
- `await listen(target, traddr, trsvcid)`: start accepting connections on that address (first listener
  of any subsystem there); raises RpcError if the address cannot be bound.
- `await unlisten(target, traddr, trsvcid)`: stop accepting on that address (when no subsystem
  listens there any more); existing connections to it are dropped.
- `subsystem_changed(target, nqn)`: a subsystem's namespaces, hosts, listeners or ANA states changed;
  connected initiators re-check what they may still see.
- `controllers(target, nqn)` / `qpairs(target, nqn)`: connected hosts, in nvmf_subsystem_get_controllers /
  nvmf_subsystem_get_qpairs shape.
nvmf.py describes a subsystem to the wire as an `Export` (`wire_export`); what depends on the host
(its keys, the listener's secure channel, namespaces hidden from it) and the cntlid range are read
from `NvmfState` here. Resizing an exported bdev is a namespace change for the hosts that see it.

A connect is checked as SPDK's target does (the subsystem exists, listens on the address the host
came in on, admits the host, the TLS PSK and DH-HMAC-CHAP keys match); reads and writes go through
the exported bdev's data path, refused with an ANA error when the listener makes the namespace's
group inaccessible. A host whose keep-alives stop for longer than its KATO loses its controller; a
removed host, listener or subsystem disconnects the controllers that depended on it. The message
format is in nvme_wire.py; the connecting end in nvme_host.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .bdev import Bdev
from .errors import RpcError, invalid_params
from .nvme_wire import (
    ANA_ACCESSIBLE,
    ANA_INACCESSIBLE,
    ANA_TRANSITION_TIME_SEC,
    DEFAULT_KATO_MS,
    DEFAULT_MAX_IO_SIZE,
    FIRMWARE_REVISION,
    INTERNAL_ERROR,
    INVALID_NAMESPACE,
    LBA_OUT_OF_RANGE,
    NVME_VERSION,
    OK,
    POLL_GROUP_THREAD,
    VENDOR_ID,
    ConnectRejected,
    CtrlrData,
    HostAuth,
    NsData,
    Sender,
    WireError,
    check_auth,
    recv_msg,
    trid_json,
)
from .target import Target


# ---- the exporting side: what nvmf.py exposes -----------------------------------------------------
@dataclass(frozen=True)
class ExportedNs:
    nsid: int
    bdev: Bdev
    nguid: str
    uuid: str | None
    anagrpid: int


@dataclass(frozen=True)
class Export:
    """A snapshot of one NVMe subsystem as the wire needs it."""

    nqn: str
    serial_number: str
    model_number: str
    ana_reporting: bool
    allow_any_host: bool
    hosts: tuple[str, ...]
    listeners: Mapping[tuple[str, str], Mapping[int, str]]  # (traddr, trsvcid) -> ANA state per group
    namespaces: tuple[ExportedNs, ...]
    max_io_size: int = DEFAULT_MAX_IO_SIZE

    def admits(self, hostnqn: str) -> bool:
        return self.allow_any_host or hostnqn in self.hosts

    def namespace(self, nsid: int) -> ExportedNs | None:
        for ns in self.namespaces:
            if ns.nsid == nsid:
                return ns
        return None

    def ana_state(self, listen: tuple[str, str], anagrpid: int) -> str:
        if not self.ana_reporting:
            return "optimized"
        return self.listeners.get(listen, {}).get(anagrpid, "optimized")

    def ns_data(self, listen: tuple[str, str]) -> tuple[NsData, ...]:
        return tuple(self._ns_data(ns, listen) for ns in sorted(self.namespaces, key=lambda n: n.nsid))

    def _ns_data(self, ns: ExportedNs, listen: tuple[str, str]) -> NsData:
        bdev = ns.bdev
        layout = bdev.layout()
        physical = getattr(bdev, "physical_block_size", 0) or bdev.block_size
        granularity = layout.get("preferred_write_granularity") or max(physical // bdev.block_size, 1)
        optimal = layout.get("optimal_write_size") or max(self.max_io_size // bdev.block_size, 1)
        return NsData(
            nsid=ns.nsid,
            nguid=ns.nguid.upper(),
            uuid=ns.uuid,
            anagrpid=ns.anagrpid,
            ana_state=self.ana_state(listen, ns.anagrpid),
            block_size=bdev.block_size,
            num_blocks=bdev.num_blocks,
            write_granularity=granularity,
            write_alignment=layout.get("preferred_write_alignment") or granularity,
            unmap_granularity=layout.get("preferred_unmap_granularity") or granularity,
            unmap_alignment=layout.get("preferred_unmap_alignment") or granularity,
            optimal_write_size=optimal,
        )

    def ctrlr_data(self, cntlid: int) -> CtrlrData:
        bdevs = [ns.bdev for ns in self.namespaces]
        return CtrlrData(
            cntlid=cntlid,
            subnqn=self.nqn,
            model_number=self.model_number,
            serial_number=self.serial_number,
            firmware_revision=FIRMWARE_REVISION,
            vendor_id=VENDOR_ID,
            nvme_version=NVME_VERSION,
            ana_reporting=self.ana_reporting,
            anatt=ANA_TRANSITION_TIME_SEC,
            unmap=all(b.io.get("unmap", False) for b in bdevs),
            write_zeroes=all(b.io.get("write_zeroes", False) for b in bdevs),
        )


Lookup = Callable[[Target, str], "Export | None"]
PolicyLookup = Callable[[Target, str, str, tuple[str, str]], "HostPolicy"]


def export_of(target: Target, nqn: str) -> Export | None:
    """The subsystem nqn as the NVMe-oF target module (nvmf.py) keeps it, or None."""
    from .nvmf import wire_export

    return wire_export(target, nqn)


def _digest(key: Any) -> str | None:
    if key is None:
        return None
    try:
        material: bytes = key.read()
    except OSError:
        return "unreadable"
    return hashlib.sha256(material.strip()).hexdigest()


@dataclass(frozen=True)
class HostPolicy:
    """What a subsystem asks of one host on one listener, and what it hides from it."""

    secure: bool = False  # the listener is a secure channel (TLS)
    auth: HostAuth = field(default_factory=HostAuth)  # the keys the host must prove
    hidden: frozenset[int] = frozenset()  # nsids not visible to this host (no_auto_visible)


def host_policy(target: Target, nqn: str, hostnqn: str, listen: tuple[str, str]) -> HostPolicy:
    """The host's keys, the listener's secure channel and namespace visibility, as nvmf.py keeps them."""
    from .nvmf import NvmfState

    sub = target.state(NvmfState).get(nqn)
    if sub is None:
        return HostPolicy()
    listener = sub.listener_on(*listen)
    secure = bool(listener is not None and listener.secure_channel)
    hidden = frozenset(nsid for nsid, ns in sub.namespaces.items() if not ns.visible_to(hostnqn))
    host = sub.find_host(hostnqn)
    if host is None:
        return HostPolicy(secure, HostAuth(), hidden)
    auth = HostAuth(tls=_digest(host.psk), dhchap=_digest(host.dhchap_key), dhchap_ctrlr=_digest(host.dhchap_ctrlr_key))
    return HostPolicy(secure, auth, hidden)


def host_view(target: Target, st: TcpState, export: Export, ctrlr: _TargetCtrlr) -> tuple[NsData, ...]:
    """The namespaces one connected controller sees."""
    hidden = st.policy(target, export.nqn, ctrlr.hostnqn, ctrlr.listen).hidden
    return tuple(n for n in export.ns_data(ctrlr.listen) if n.nsid not in hidden)


# ---- the exporting side: controllers and queue pairs ----------------------------------------------
class _TargetQpair:
    def __init__(self, ctrlr: _TargetCtrlr, qid: int, sender: Sender, listen: tuple[str, str]) -> None:
        self.ctrlr = ctrlr
        self.qid = qid
        self.sender = sender
        self.listen = listen
        self.peer = sender.peer()


class _TargetCtrlr:
    def __init__(self, nqn: str, cntlid: int, hostnqn: str, hostid: str, listen: tuple[str, str], kato_ms: int) -> None:
        self.nqn = nqn
        self.cntlid = cntlid
        self.hostnqn = hostnqn
        self.hostid = hostid
        self.listen = listen
        self.kato_ms = kato_ms
        self.qpairs: list[_TargetQpair] = []
        self.seen: tuple[NsData, ...] = ()
        self.in_host_list = False
        self.last_heard = asyncio.get_running_loop().time()
        self.closed = False

    @property
    def admin(self) -> _TargetQpair | None:
        return next((q for q in self.qpairs if q.qid == 0), None)


class _SizeWatch:
    """Hears of exported bdevs being resized, so that connected hosts get a namespace event."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def base_removed(self, bdev: Bdev) -> None:
        bdev.unwatch(self)

    def base_resized(self, bdev: Bdev) -> None:
        st = _state(self.target)
        for nqn in dict.fromkeys(c.nqn for c in st.ctrlrs):
            subsystem_changed(self.target, nqn)


class TcpState:
    """Listening sockets and connected controllers of one simulated target."""

    def __init__(self) -> None:
        self.servers: dict[tuple[str, str], asyncio.Server] = {}
        self.ctrlrs: list[_TargetCtrlr] = []
        self.qpairs: list[_TargetQpair] = []  # in connection order, as one poll group lists them
        self.last_cntlid: dict[object, int] = {}  # by subsystem object: a re-created one starts over
        self.lookup: Lookup = export_of
        self.policy: PolicyLookup = host_policy
        self.size_watch: _SizeWatch | None = None

    def watch_sizes(self, target: Target, export: Export) -> None:
        """Resizing a bdev that a connected host sees is a namespace change for that host."""
        if self.size_watch is None:
            self.size_watch = _SizeWatch(target)
        for ns in export.namespaces:
            if self.size_watch not in ns.bdev.watchers:
                ns.bdev.watch(self.size_watch)


def _state(target: Target) -> TcpState:
    return target.state(TcpState)


async def listen(target: Target, traddr: str, trsvcid: str) -> None:
    st = _state(target)
    key = (traddr, trsvcid)
    if key in st.servers:
        return
    try:
        port = int(trsvcid)
    except ValueError:
        raise invalid_params() from None

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(target, key, reader, writer)

    try:
        server = await asyncio.start_server(serve, host=traddr, port=port, reuse_address=True)
    except (OSError, ValueError) as e:
        raise invalid_params() from e
    st.servers[key] = server


async def unlisten(target: Target, traddr: str, trsvcid: str) -> None:
    st = _state(target)
    server = st.servers.pop((traddr, trsvcid), None)
    if server is None:
        return
    server.close()
    for ctrlr in [c for c in st.ctrlrs if c.listen == (traddr, trsvcid)]:
        _drop(st, ctrlr)


def subsystem_changed(target: Target, nqn: str) -> None:
    st = _state(target)
    for ctrlr in [c for c in st.ctrlrs if c.nqn == nqn]:
        export = st.lookup(target, nqn)
        if export is None or ctrlr.listen not in export.listeners:
            _drop(st, ctrlr)
            continue
        in_list = ctrlr.hostnqn in export.hosts
        if ctrlr.in_host_list and not in_list:
            # nvmf_subsystem_remove_host disconnects that host; allow_any_host changes do not
            _drop(st, ctrlr)
            continue
        ctrlr.in_host_list = in_list
        st.watch_sizes(target, export)
        view = host_view(target, st, export, ctrlr)
        if view != ctrlr.seen:
            ctrlr.seen = view
            admin = ctrlr.admin
            if admin is not None:
                target.spawn(_send_event(st, ctrlr, admin, export, view))


async def _send_event(
    st: TcpState, ctrlr: _TargetCtrlr, admin: _TargetQpair, export: Export, view: tuple[NsData, ...]
) -> None:
    msg = {
        "op": "event",
        "ctrlr": export.ctrlr_data(ctrlr.cntlid).to_wire(),
        "namespaces": [n.to_wire() for n in view],
    }
    try:
        await admin.sender.send(msg)
    except WireError:
        _drop(st, ctrlr)


def controllers(target: Target, nqn: str) -> list[dict[str, Any]]:
    return [
        {
            "cntlid": c.cntlid,
            "cntrltype": "io",
            "hostnqn": c.hostnqn,
            "hostid": c.hostid,
            "num_io_qpairs": len(c.qpairs),
        }
        for c in _state(target).ctrlrs
        if c.nqn == nqn
    ]


def qpairs(target: Target, nqn: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for q in _state(target).qpairs:
        if q.ctrlr.nqn != nqn:
            continue
        out.append(
            {
                "cntlid": q.ctrlr.cntlid,
                "qid": q.qid,
                "state": "enabled",
                "thread": POLL_GROUP_THREAD,
                "hostnqn": q.ctrlr.hostnqn,
                "listen_address": trid_json(*q.listen),
                "peer_address": trid_json(*q.peer),
            }
        )
    return out


def _drop(st: TcpState, ctrlr: _TargetCtrlr) -> None:
    """Disconnect a controller: both its queue pairs close, the host sees a reset."""
    ctrlr.closed = True
    for q in ctrlr.qpairs:
        q.sender.close()
        if q in st.qpairs:
            st.qpairs.remove(q)
    ctrlr.qpairs = []
    if ctrlr in st.ctrlrs:
        st.ctrlrs.remove(ctrlr)


async def _serve_connection(
    target: Target, listen: tuple[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    st = _state(target)
    sender = Sender(writer)
    ctrlr: _TargetCtrlr | None = None
    try:
        msg, _ = await asyncio.wait_for(recv_msg(reader), timeout=10)
        if msg.get("op") != "connect":
            return
        try:
            ctrlr, qpair = _accept(target, st, listen, sender, msg)
        except ConnectRejected as e:
            with contextlib.suppress(WireError):
                await sender.send({"status": "rejected", "reason": str(e)})
            return
        if qpair.qid == 0:
            export = st.lookup(target, ctrlr.nqn)
            assert export is not None
            await sender.send(
                {
                    "status": OK,
                    "ctrlr": export.ctrlr_data(ctrlr.cntlid).to_wire(),
                    "namespaces": [n.to_wire() for n in ctrlr.seen],
                }
            )
            target.spawn(_watch_keepalive(st, ctrlr))
            await _admin_loop(target, st, ctrlr, reader, sender)
        else:
            await sender.send({"status": OK})
            await _io_loop(target, st, qpair, reader)
    except (TimeoutError, WireError):
        pass
    finally:
        if ctrlr is not None:
            _drop(st, ctrlr)
        sender.close()


def _accept(
    target: Target, st: TcpState, listen: tuple[str, str], sender: Sender, msg: Mapping[str, Any]
) -> tuple[_TargetCtrlr, _TargetQpair]:
    subnqn = str(msg.get("subnqn", ""))
    hostnqn = str(msg.get("hostnqn", ""))
    qid = msg.get("qid")
    export = st.lookup(target, subnqn)
    if export is None:
        raise ConnectRejected(f"subsystem {subnqn} does not exist")
    if listen not in export.listeners:
        raise ConnectRejected(f"subsystem {subnqn} does not listen on {listen[0]}:{listen[1]}")
    if not export.admits(hostnqn):
        raise ConnectRejected(f"host {hostnqn} is not allowed")
    policy = st.policy(target, subnqn, hostnqn, listen)
    failure = check_auth(policy.secure, policy.auth, HostAuth.from_wire(msg.get("auth")))
    if failure is not None:
        raise ConnectRejected(failure)
    if qid == 0:
        cntlid = _new_cntlid(target, st, subnqn)
        kato = msg.get("kato_ms", DEFAULT_KATO_MS)
        ctrlr = _TargetCtrlr(
            subnqn,
            cntlid,
            hostnqn,
            str(msg.get("hostid", "")),
            listen,
            kato if isinstance(kato, int) and kato >= 0 else DEFAULT_KATO_MS,
        )
        ctrlr.in_host_list = hostnqn in export.hosts
        ctrlr.seen = host_view(target, st, export, ctrlr)
        st.watch_sizes(target, export)
        st.ctrlrs.append(ctrlr)
    else:
        found = next(
            (c for c in st.ctrlrs if c.cntlid == msg.get("cntlid") and c.nqn == subnqn and c.hostnqn == hostnqn),
            None,
        )
        if found is None or qid != 1 or any(q.qid == 1 for q in found.qpairs):
            raise ConnectRejected("no such controller for an I/O queue")
        ctrlr = found
    qpair = _TargetQpair(ctrlr, int(qid or 0), sender, listen)
    ctrlr.qpairs.append(qpair)
    st.qpairs.append(qpair)
    return ctrlr, qpair


def _new_cntlid(target: Target, st: TcpState, nqn: str) -> int:
    """nvmf_subsystem_gen_cntlid: the next free id in the subsystem's [min_cntlid, max_cntlid]."""
    from .nvmf import NvmfState

    sub = target.state(NvmfState).get(nqn)
    lo, hi = (sub.min_cntlid, sub.max_cntlid) if sub is not None else (1, 0xFFEF)
    key: object = sub if sub is not None else nqn
    used = {c.cntlid for c in st.ctrlrs if c.nqn == nqn}
    last = st.last_cntlid.get(key, lo - 1)
    for _ in range(hi - lo + 1):
        last = last + 1 if lo <= last + 1 <= hi else lo
        if last not in used:
            break
    else:
        raise ConnectRejected("no free controller id")
    st.last_cntlid[key] = last
    return last


async def _watch_keepalive(st: TcpState, ctrlr: _TargetCtrlr) -> None:
    """The target side of keep-alive: a host silent for longer than KATO loses its controller."""
    if ctrlr.kato_ms == 0:
        return
    kato = ctrlr.kato_ms / 1000.0
    loop = asyncio.get_running_loop()
    while not ctrlr.closed:
        await asyncio.sleep(min(kato / 4, 1.0))
        if loop.time() - ctrlr.last_heard > kato:
            _drop(st, ctrlr)
            return


async def _admin_loop(
    target: Target, st: TcpState, ctrlr: _TargetCtrlr, reader: asyncio.StreamReader, sender: Sender
) -> None:
    loop = asyncio.get_running_loop()
    while not ctrlr.closed:
        msg, _ = await recv_msg(reader)
        ctrlr.last_heard = loop.time()
        op = msg.get("op")
        if op == "keepalive":
            await sender.send({"tag": msg.get("tag"), "status": OK})
        elif op == "shutdown":
            await sender.send({"tag": msg.get("tag"), "status": OK})
            _drop(st, ctrlr)
            return
        elif op == "identify":
            export = st.lookup(target, ctrlr.nqn)
            view = host_view(target, st, export, ctrlr) if export is not None else ()
            await sender.send({"tag": msg.get("tag"), "status": OK, "namespaces": [n.to_wire() for n in view]})
        else:
            await sender.send({"tag": msg.get("tag"), "status": "invalid_opcode"})


async def _io_loop(target: Target, st: TcpState, qpair: _TargetQpair, reader: asyncio.StreamReader) -> None:
    while not qpair.ctrlr.closed:
        msg, data = await recv_msg(reader)
        target.spawn(_do_io(target, st, qpair, msg, data))


async def _do_io(target: Target, st: TcpState, qpair: _TargetQpair, msg: dict[str, Any], data: bytes) -> None:
    status, out = await _execute(target, st, qpair, msg, data)
    try:
        await qpair.sender.send({"tag": msg.get("tag"), "status": status}, out)
    except WireError:
        _drop(st, qpair.ctrlr)


async def _execute(
    target: Target, st: TcpState, qpair: _TargetQpair, msg: Mapping[str, Any], data: bytes
) -> tuple[str, bytes]:
    export = st.lookup(target, qpair.ctrlr.nqn)
    nsid = msg.get("nsid")
    ns = export.namespace(nsid) if export is not None and isinstance(nsid, int) else None
    if ns is not None and export is not None:
        ctrlr = qpair.ctrlr
        if ns.nsid in st.policy(target, export.nqn, ctrlr.hostnqn, ctrlr.listen).hidden:
            ns = None
    if export is None or ns is None or ns.bdev.removed:
        return INVALID_NAMESPACE, b""
    if export.ana_state(qpair.listen, ns.anagrpid) not in ANA_ACCESSIBLE:
        return ANA_INACCESSIBLE, b""
    op = msg.get("op")
    offset = msg.get("offset")
    length = len(data) if op == "write" else msg.get("length")
    if not isinstance(offset, int) or not isinstance(length, int) or op not in ("read", "write"):
        return "invalid_opcode", b""
    if offset < 0 or length < 0 or offset + length > ns.bdev.size_bytes:
        return LBA_OUT_OF_RANGE, b""
    try:
        if op == "read":
            return OK, await ns.bdev.read(offset, length)
        await ns.bdev.write(offset, data)
    except RpcError:
        return INTERNAL_ERROR, b""
    return OK, b""


__all__ = ["DEFAULT_MAX_IO_SIZE", "Export", "ExportedNs", "TcpState"]
