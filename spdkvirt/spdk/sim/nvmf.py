"""NVMe-oF target: transports, subsystems, namespaces, listeners, hosts, ANA.

All state lives in `NvmfState` (one per target, `target.state(NvmfState)`), with plain attributes
that the TCP wire (`nvme_tcp.py`) reads: `subsystems` by NQN, each with `namespaces` (nsid ->
`Namespace`: bdev, nguid, uuid, anagrpid), `hosts`, `allow_any_host` and `listeners` (each with its
ANA state per group). TCP listeners really listen: the first listener on an address opens it
through `nvme_tcp.listen`, the last one to go closes it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid as uuidlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import nvme_tcp
from .bdev import CLAIM_EXCLUSIVE_WRITE, Bdev
from .decode import U8_MAX, U16_MAX, U32_MAX, U64_MAX, decode, require_no_params
from .errors import ENODEV, INTERNAL_ERROR, INVALID_PARAMS, RpcError, errno_error, invalid_params
from .keyring import Key, KeyringState, find_key
from .registry import rpc
from .target import Target

DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery"
UUID_NQN_PREFIX = "nqn.2014-08.org.nvmexpress:uuid:"
TGT_NAME = "nvmf_tgt"
DEFAULT_MODEL = "SPDK bdev Controller"
DEFAULT_NAMESPACES = 32
MIN_CNTLID = 1
MAX_CNTLID = 0xFFEF
MAX_LISTENERS_PER_SUBSYSTEM = 16
ANA_STATES = ("optimized", "non_optimized", "inaccessible")
KNOWN_TRTYPES = {"PCIE": "PCIe", "RDMA": "RDMA", "FC": "FC", "TCP": "TCP", "VFIOUSER": "VFIOUSER"}
ADRFAMS = {"ipv4": "IPv4", "ipv6": "IPv6", "ib": "IB", "fc": "FC"}
# what this build of spdk_tgt offers: TCP only
AVAILABLE_TRANSPORTS = ("TCP",)
# iobuf defaults (iobuf_set_options) and the core count the reference targets ran with
IOBUF_SMALL_POOL = 8192
IOBUF_LARGE_POOL = 1024
IOBUF_LARGE_BUFSIZE = 135168
CORE_COUNT = 1
TICK_RATE = 2_100_000_000
ONCS_FEATURES = ("nvmcmps", "nvmdsmsv", "nvmwzsv", "reservs", "nvmcpys")
FUSES_FEATURES = ("fcws",)


def _failed() -> RpcError:
    return RpcError(INTERNAL_ERROR, "Internal error")


# ---- transport ids -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Trid:
    """An NVMe transport id as SPDK keeps it: trstring upper-cased, addresses as given."""

    trtype: str
    adrfam: str
    traddr: str
    trsvcid: str
    subnqn: str = ""

    @property
    def kind(self) -> str:
        """The transport type SPDK parses from the string (CUSTOM for unknown ones)."""
        return KNOWN_TRTYPES.get(self.trtype, "CUSTOM")

    def to_json(self) -> dict[str, str]:
        return {
            "trtype": self.trtype,
            "adrfam": self.adrfam or "unknown",
            "traddr": self.traddr,
            "trsvcid": self.trsvcid,
        }

    def same(self, other: Trid) -> bool:
        """spdk_nvme_transport_id_compare(...) == 0."""
        if self.kind == "CUSTOM" or other.kind == "CUSTOM":
            if self.trtype.lower() != other.trtype.lower():
                return False
        elif self.kind != other.kind:
            return False
        if self.adrfam != other.adrfam:
            return False
        if self.adrfam in ("IPv4", "IPv6"):
            a, b = _packed(self.adrfam, self.traddr), _packed(other.adrfam, other.traddr)
            if a is None or b is None or a != b:
                return False
        elif self.traddr.lower() != other.traddr.lower():
            return False
        return self.trsvcid.lower() == other.trsvcid.lower() and self.subnqn == other.subnqn


def _packed(adrfam: str, addr: str) -> bytes | None:
    """inet_pton for the family, or None when the address is not a literal of it."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if (adrfam == "IPv4") != (ip.version == 4) or (ip.version == 6 and "%" in addr):
        return None
    return ip.packed


def _trid_from(address: Mapping[str, Any]) -> Trid:
    """rpc_listen_address_to_trid: -32602 for what SPDK rejects."""
    trtype: str = address["trtype"]
    if len(trtype.encode()) >= 32:
        raise invalid_params()
    upper = trtype.upper()
    adrfam = address.get("adrfam")
    if adrfam is not None:
        fam = ADRFAMS.get(adrfam.lower())
        if fam is None:
            raise invalid_params()
    elif upper in ("TCP", "RDMA"):
        fam = "IPv4"
    else:
        fam = ""
    traddr: str = address["traddr"]
    trsvcid: str = address.get("trsvcid", "")
    if len(traddr.encode()) > 255 or len(trsvcid.encode()) > 31:
        raise invalid_params()
    return Trid(upper, fam, traddr, trsvcid)


def _port_number(trsvcid: str) -> int | None:
    """nvmf_tcp_trsvcid_to_int: a decimal port in 1..65535."""
    if not trsvcid or not trsvcid.isdigit():
        return None
    port = int(trsvcid)
    return port if 1 <= port <= 65535 else None


# ---- decoding ----------------------------------------------------------------------------------


def _is_hex(n: int) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not isinstance(v, str) or len(v) != 2 * n:
            return False
        try:
            bytes.fromhex(v)
        except ValueError:
            return False
        return all(c in "0123456789abcdefABCDEF" for c in v)

    return check


def _ascii_field(limit: int) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        raw = v.encode()
        return len(raw) <= limit and all(0x20 <= b <= 0x7E for b in raw)

    return check


def _obj(spec: Mapping[str, tuple[str, bool]]) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not isinstance(v, dict):
            return False
        try:
            decode(v, spec, extra=EXTRA)
        except RpcError:
            return False
        return True

    return check


def _enum_list(names: tuple[str, ...], limit: int) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return isinstance(v, list) and len(v) <= limit and all(x in names for x in v)

    return check


LISTEN_ADDRESS_SPEC: dict[str, tuple[str, bool]] = {
    "trtype": ("str", True),
    "adrfam": ("str", False),
    "traddr": ("str", True),
    "trsvcid": ("str", False),
}
NAMESPACE_SPEC: dict[str, tuple[str, bool]] = {
    "nsid": ("u32", False),
    "bdev_name": ("str", True),
    "ptpl_file": ("str", False),
    "nguid": ("nguid", False),
    "eui64": ("eui64", False),
    "uuid": ("uuid", False),
    "anagrpid": ("u32", False),
    "no_auto_visible": ("bool", False),
    "hide_metadata": ("bool", False),
}
EXTRA: dict[str, Callable[[Any], bool]] = {
    "nguid": _is_hex(16),
    "eui64": _is_hex(8),
    "sn": _ascii_field(20),
    "mn": _ascii_field(40),
    "ana_state": lambda v: v in ANA_STATES,
    "oncs": _enum_list(ONCS_FEATURES, 16),
    "fuses": _enum_list(FUSES_FEATURES, 16),
}
EXTRA["listen_address"] = _obj(LISTEN_ADDRESS_SPEC)
EXTRA["namespace"] = _obj(NAMESPACE_SPEC)


def _decode(params: Any, spec: Mapping[str, tuple[str, bool]], *, relaxed: bool = False) -> dict[str, Any]:
    """spdk_json_decode_object(_relaxed) as the nvmf RPCs use it: failures are -32602."""
    if relaxed and isinstance(params, dict):
        params = {k: v for k, v in params.items() if k in spec}
    try:
        return decode(params, spec, code=INVALID_PARAMS, extra=EXTRA)
    except RpcError:
        raise invalid_params() from None


def _check_tgt(p: Mapping[str, Any], message: str = "Unable to find a target.") -> None:
    name = p.get("tgt_name")
    if name is not None and name != TGT_NAME:
        raise RpcError(INTERNAL_ERROR, message)


# ---- NQN validation ----------------------------------------------------------------------------


def nqn_is_valid(nqn: str) -> bool:
    """nvmf_nqn_is_valid."""
    raw = nqn.encode()
    if len(raw) > 223 or len(raw) < 11:
        return False
    if nqn == DISCOVERY_NQN:
        return True
    if nqn.startswith(UUID_NQN_PREFIX):
        rest = nqn[len(UUID_NQN_PREFIX) :]
        if len(rest) != 36:
            return False
        try:
            uuidlib.UUID(rest)
        except ValueError:
            return False
        return all(rest[i] == "-" for i in (8, 13, 18, 23))
    if not nqn.startswith("nqn."):
        return False
    date = nqn[4:12]
    if not (len(date) == 8 and date[:4].isdigit() and date[4] == "-" and date[5:7].isdigit() and date[7] == "."):
        return False
    if not all(c in "0123456789" for c in date[:4] + date[5:7]):
        return False
    end = nqn.find(":")
    if end < 0 or end >= len(nqn) - 1:
        return False
    return _domain_ok(nqn[12:end])


def _domain_ok(domain: str) -> bool:
    state = "letter"
    label = 0
    for i, c in enumerate(domain):
        if label > 63:
            return False
        alpha = c.isascii() and c.isalpha()
        alnum = c.isascii() and c.isalnum()
        last = i == len(domain) - 1
        if state == "letter":
            if not alpha:
                return False
            state, label = "any", label + 1
        elif c == "-":
            if last:
                return False
            state, label = "ldh", label + 1
        elif alnum:
            state, label = "any", label + 1
        elif c == "." and state == "any":
            state, label = "letter", 0
        else:
            return False
    return True


# ---- state -------------------------------------------------------------------------------------


class Transport:
    """A created transport with its options (in nvmf_get_transports order)."""

    def __init__(self, name: str, opts: dict[str, Any], tcp: dict[str, Any]) -> None:
        self.name = name
        self.opts = opts
        self.tcp = tcp

    def to_json(self) -> dict[str, Any]:
        o = self.opts
        return {
            "trtype": self.name,
            "max_queue_depth": o["max_queue_depth"],
            "max_io_qpairs_per_ctrlr": (o["max_qpairs_per_ctrlr"] - 1) & U32_MAX,
            "in_capsule_data_size": o["in_capsule_data_size"],
            "max_io_size": o["max_io_size"],
            "max_aq_depth": o["max_aq_depth"],
            "iobuf_small_cache_size": o["iobuf_small_cache_size"],
            "iobuf_large_cache_size": o["iobuf_large_cache_size"],
            "dif_insert_or_strip": o["dif_insert_or_strip"],
            "zcopy": o["zcopy"],
            "c2h_success": self.tcp["c2h_success"],
            "sock_priority": self.tcp["sock_priority"],
            "abort_timeout_sec": o["abort_timeout_sec"],
            "ack_timeout": o["ack_timeout"],
            "data_wr_pool_size": o["data_wr_pool_size"],
            "disable_command_passthru": o["disable_command_passthru"],
            "kas": o["kas"],
            "min_kato": o["min_kato"],
        }


class TransportListener:
    """An address a transport listens on, shared by every subsystem listener on it."""

    def __init__(self, trid: Trid, transport: Transport, sock_impl: str | None) -> None:
        self.trid = trid
        self.transport = transport
        self.sock_impl = sock_impl
        self.ref = 1


class Listener:
    """A subsystem's listener: the transport listener's address and one ANA state per group."""

    def __init__(
        self,
        trid: Trid,
        transport: Transport,
        ana_states: list[str],
        secure_channel: bool,
        sock_impl: str | None,
        lid: int,
    ) -> None:
        self.trid = trid
        self.transport = transport
        self.ana_states = ana_states
        self.secure_channel = secure_channel
        self.sock_impl = sock_impl
        self.id = lid

    def ana_state(self, anagrpid: int) -> str:
        """The ANA state of a group through this listener ("inaccessible" for unknown groups)."""
        if 1 <= anagrpid <= len(self.ana_states):
            return self.ana_states[anagrpid - 1]
        return "inaccessible"


class Host:
    """An allowed host, with its DH-HMAC-CHAP keys (keyring keys) and TLS PSK when set."""

    def __init__(
        self, nqn: str, dhchap_key: Key | None = None, dhchap_ctrlr_key: Key | None = None, psk: Key | None = None
    ) -> None:
        self.nqn = nqn
        self.dhchap_key = dhchap_key
        self.dhchap_ctrlr_key = dhchap_ctrlr_key
        self.psk = psk

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nqn": self.nqn}
        if self.dhchap_key is not None:
            out["dhchap_key"] = self.dhchap_key.name
        if self.dhchap_ctrlr_key is not None:
            out["dhchap_ctrlr_key"] = self.dhchap_ctrlr_key.name
        return out


class Namespace:
    """A namespace: it holds an exclusive_write claim on its bdev and hears of its removal."""

    def __init__(
        self,
        subsystem: Subsystem,
        nsid: int,
        bdev: Bdev,
        nguid: str,
        uuid: str,
        anagrpid: int,
        eui64: str | None,
        no_auto_visible: bool,
        ptpl_file: str | None,
    ) -> None:
        self.subsystem = subsystem
        self.nsid = nsid
        self.bdev = bdev
        self.nguid = nguid  # 32 upper-case hex digits
        self.uuid = uuid
        self.anagrpid = anagrpid
        self.eui64 = eui64
        self.no_auto_visible = no_auto_visible
        self.ptpl_file = ptpl_file
        self.hosts: list[str] = []  # hosts it is visible to when no_auto_visible (newest first)

    def visible_to(self, hostnqn: str) -> bool:
        return not self.no_auto_visible or hostnqn in self.hosts

    def base_removed(self, bdev: Bdev) -> None:
        """The bdev went away: the namespace is removed (hot-remove)."""
        sub = self.subsystem
        if sub.namespaces.get(self.nsid) is self:
            sub.remove_ns(self.nsid)
            nvme_tcp.subsystem_changed(bdev.target, sub.nqn)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "nsid": self.nsid,
            "bdev_name": self.bdev.name,
            "name": self.bdev.name,
        }
        if self.nguid.strip("0"):
            out["nguid"] = self.nguid
        if self.eui64 is not None and self.eui64.strip("0"):
            out["eui64"] = self.eui64
        if self.uuid != str(uuidlib.UUID(int=0)):
            out["uuid"] = self.uuid
        if self.subsystem.ana_reporting:
            out["anagrpid"] = self.anagrpid
        return out


class Subsystem:
    def __init__(self, nqn: str, subtype: str, max_namespaces: int) -> None:
        self.nqn = nqn
        self.subtype = subtype  # "NVMe" or "Discovery"
        self.serial_number = "0" * 20
        self.model_number = DEFAULT_MODEL
        self.max_namespaces = max_namespaces
        self.min_cntlid = MIN_CNTLID
        self.max_cntlid = MAX_CNTLID
        self.ana_reporting = False
        self.dmrsl = 2097152
        self.wzsl = 12
        self.passthrough = False
        self.enable_nssr = False
        self.allow_any_host = False
        self.hosts: list[Host] = []  # newest first
        self.namespaces: dict[int, Namespace] = {}
        self.listeners: list[Listener] = []  # newest first

    @property
    def is_discovery(self) -> bool:
        return self.subtype == "Discovery"

    # ---- lookups for the wire ------------------------------------------------------------
    def find_host(self, hostnqn: str) -> Host | None:
        return next((h for h in self.hosts if h.nqn == hostnqn), None)

    def host_allowed(self, hostnqn: str) -> bool:
        return self.allow_any_host or self.find_host(hostnqn) is not None

    def find_listener(self, trid: Trid) -> Listener | None:
        return next((li for li in self.listeners if li.trid.same(trid)), None)

    def listener_on(self, traddr: str, trsvcid: str) -> Listener | None:
        """The TCP listener of this subsystem on an address, if it listens there."""
        for li in self.listeners:
            if (
                li.trid.trtype == "TCP"
                and li.trid.trsvcid == trsvcid
                and (li.trid.traddr == traddr or _same_ip(li.trid.traddr, traddr))
            ):
                return li
        return None

    def sorted_namespaces(self) -> list[Namespace]:
        return [self.namespaces[n] for n in sorted(self.namespaces)]

    # ---- changes -------------------------------------------------------------------------
    def remove_ns(self, nsid: int) -> Namespace | None:
        ns = self.namespaces.pop(nsid, None)
        if ns is not None:
            ns.bdev.release(ns)
            ns.bdev.close(ns)
        return ns

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "nqn": self.nqn,
            "subtype": self.subtype,
            "listen_addresses": [li.trid.to_json() for li in self.listeners],
            "allow_any_host": self.allow_any_host,
            "hosts": [h.to_json() for h in self.hosts],
        }
        if not self.is_discovery:
            out["serial_number"] = self.serial_number
            out["model_number"] = self.model_number
            if self.max_namespaces:
                out["max_namespaces"] = self.max_namespaces
            out["passthrough"] = self.passthrough
            out["min_cntlid"] = self.min_cntlid
            out["max_cntlid"] = self.max_cntlid
            out["dmrsl"] = self.dmrsl
            out["wzsl"] = self.wzsl
            out["namespaces"] = [ns.to_json() for ns in self.sorted_namespaces()]
        return out

    def listener_json(self, li: Listener) -> dict[str, Any]:
        out: dict[str, Any] = {"address": li.trid.to_json()}
        if self.ana_reporting:
            out["ana_states"] = [{"ana_group": i + 1, "ana_state": s} for i, s in enumerate(li.ana_states)]
        return out


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


@dataclass
class Referral:
    trid: Trid
    secure_channel: bool

    def to_json(self) -> dict[str, Any]:
        return {"address": self.trid.to_json(), "secure_channel": self.secure_channel, "subnqn": self.trid.subnqn}


class NvmfState:
    """The NVMe-oF target of one simulated spdk_tgt (SPDK's "nvmf_tgt")."""

    def __init__(self) -> None:
        self.subsystems: dict[str, Subsystem] = {}
        self.transports: dict[str, Transport] = {}
        self.tr_listeners: list[TransportListener] = []
        self.referrals: list[Referral] = []
        self.max_subsystems = 1024
        self.crdt = (0, 0, 0)
        self.lock = asyncio.Lock()
        # the discovery subsystem exists from the start (and can be deleted)
        disc = Subsystem(DISCOVERY_NQN, "Discovery", 0)
        disc.allow_any_host = True
        self.subsystems[DISCOVERY_NQN] = disc

    def listed(self) -> Iterator[Subsystem]:
        """Subsystems in SPDK's order (its tree is sorted by NQN)."""
        for nqn in sorted(self.subsystems, key=lambda n: n.encode()):
            yield self.subsystems[nqn]

    def get(self, nqn: str) -> Subsystem | None:
        return self.subsystems.get(nqn)

    def transport(self, name: str) -> Transport | None:
        return self.transports.get(name.upper())

    def find_tr_listener(self, trid: Trid) -> TransportListener | None:
        return next((t for t in self.tr_listeners if t.trid.same(trid)), None)

    def subsystems_on(self, traddr: str, trsvcid: str) -> list[Subsystem]:
        """Subsystems that listen on a TCP address (for the wire's connect and discovery)."""
        return [s for s in self.listed() if s.listener_on(traddr, trsvcid) is not None]


def nvmf_state(target: Target) -> NvmfState:
    return target.state(NvmfState)


def wire_export(target: Target, nqn: str) -> nvme_tcp.Export | None:
    """The NVMe subsystem nqn as the TCP wire serves it, or None (unknown or discovery)."""
    st = nvmf_state(target)
    sub = st.get(nqn)
    if sub is None or sub.is_discovery:
        return None
    tcp = st.transport("TCP")
    return nvme_tcp.Export(
        nqn=sub.nqn,
        serial_number=sub.serial_number,
        model_number=sub.model_number,
        ana_reporting=sub.ana_reporting,
        allow_any_host=sub.allow_any_host,
        hosts=tuple(h.nqn for h in sub.hosts),
        listeners={
            (li.trid.traddr, li.trid.trsvcid): {i + 1: s for i, s in enumerate(li.ana_states)}
            for li in sub.listeners
            if li.trid.trtype == "TCP"
        },
        namespaces=tuple(
            nvme_tcp.ExportedNs(nsid=ns.nsid, bdev=ns.bdev, nguid=ns.nguid, uuid=ns.uuid, anagrpid=ns.anagrpid)
            for ns in sub.sorted_namespaces()
        ),
        max_io_size=tcp.opts["max_io_size"] if tcp is not None else nvme_tcp.DEFAULT_MAX_IO_SIZE,
    )


def _subsystem(st: NvmfState, nqn: str) -> Subsystem:
    sub = st.get(nqn)
    if sub is None:
        raise invalid_params()
    return sub


# ---- listening ---------------------------------------------------------------------------------


async def _transport_listen(
    target: Target, st: NvmfState, trid: Trid, secure_channel: bool, sock_impl: str | None
) -> TransportListener:
    """spdk_nvmf_tgt_listen_ext: share the transport listener on the address or open it."""
    transport = st.transport(trid.trtype)
    if transport is None:
        raise invalid_params()
    existing = st.find_tr_listener(trid)
    if existing is not None:
        if sock_impl is not None and existing.sock_impl is not None and not sock_impl.startswith(existing.sock_impl):
            raise invalid_params()
        existing.ref += 1
        return existing
    port = _port_number(trid.trsvcid)
    if port is None:
        raise invalid_params()
    if secure_channel and sock_impl is not None and not "ssl".startswith(sock_impl):
        raise invalid_params()
    if trid.adrfam not in ("IPv4", "IPv6") or _packed(trid.adrfam, trid.traddr) is None:
        raise invalid_params()
    from .iscsi import address_in_use  # iscsi imports this module

    if address_in_use(target, trid.traddr, port):
        raise invalid_params()
    tl = TransportListener(trid, transport, sock_impl)
    st.tr_listeners.append(tl)
    try:
        await nvme_tcp.listen(target, trid.traddr, trid.trsvcid)
    except (RpcError, OSError):
        st.tr_listeners.remove(tl)
        raise invalid_params() from None
    return tl


async def _transport_stop_listen(target: Target, st: NvmfState, trid: Trid) -> None:
    tl = st.find_tr_listener(trid)
    if tl is None:
        return
    tl.ref -= 1
    if tl.ref == 0:
        st.tr_listeners.remove(tl)
        await nvme_tcp.unlisten(target, tl.trid.traddr, tl.trid.trsvcid)


# ---- transports --------------------------------------------------------------------------------

TRANSPORT_SPEC: dict[str, tuple[str, bool]] = {
    "trtype": ("str", True),
    "max_queue_depth": ("u16", False),
    "max_io_qpairs_per_ctrlr": ("u16", False),
    "in_capsule_data_size": ("u32", False),
    "max_io_size": ("u32", False),
    "io_unit_size": ("u32", False),
    "max_aq_depth": ("u32", False),
    "num_shared_buffers": ("u32", False),
    "buf_cache_size": ("u32", False),
    "iobuf_small_cache_size": ("u32", False),
    "iobuf_large_cache_size": ("u32", False),
    "dif_insert_or_strip": ("bool", False),
    "abort_timeout_sec": ("u32", False),
    "zcopy": ("bool", False),
    "tgt_name": ("str", False),
    "acceptor_poll_rate": ("u32", False),
    "ack_timeout": ("u32", False),
    "data_wr_pool_size": ("u32", False),
    "disable_command_passthru": ("bool", False),
    "kas": ("u16", False),
    "min_kato": ("u32", False),
    "masked_oncs": ("oncs", False),
    "masked_fuses": ("fuses", False),
}
TCP_SPEC: dict[str, tuple[str, bool]] = {
    "c2h_success": ("bool", False),
    "control_msg_num": ("u16", False),
    "sock_priority": ("u32", False),
}


def _tcp_defaults() -> dict[str, Any]:
    return {
        "max_queue_depth": 128,
        "max_qpairs_per_ctrlr": 128,
        "in_capsule_data_size": 4096,
        "max_io_size": 131072,
        "io_unit_size": 131072,
        "max_aq_depth": 128,
        "num_shared_buffers": 0,
        "iobuf_small_cache_size": U32_MAX,
        "iobuf_large_cache_size": U32_MAX,
        "dif_insert_or_strip": False,
        "abort_timeout_sec": 1,
        "zcopy": False,
        "acceptor_poll_rate": 10000,
        "ack_timeout": 0,
        "data_wr_pool_size": 0,
        "disable_command_passthru": False,
        "kas": 100,
        "min_kato": 10000,
    }


def _is_pow2(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


@rpc("nvmf_create_transport")
async def nvmf_create_transport(target: Target, params: Any) -> Any:
    p = _decode(params, TRANSPORT_SPEC, relaxed=True)
    _check_tgt(p)
    st = nvmf_state(target)
    trtype: str = p["trtype"]
    name = trtype.upper()
    if name not in AVAILABLE_TRANSPORTS:
        raise invalid_params(f"Invalid transport type '{trtype}'")
    opts = _tcp_defaults()
    for key, value in params.items():
        if key not in TRANSPORT_SPEC or key in ("trtype", "tgt_name", "masked_oncs", "masked_fuses"):
            continue
        if key == "max_io_qpairs_per_ctrlr":
            opts["max_qpairs_per_ctrlr"] = (value + 1) & U16_MAX
        elif key == "buf_cache_size":
            opts["iobuf_small_cache_size"] = value
        else:
            opts[key] = value
    if st.transport(name) is not None:
        raise RpcError(INTERNAL_ERROR, f"Transport type '{trtype}' already exists")
    create_failed = RpcError(INTERNAL_ERROR, f"Transport type '{trtype}' create failed")
    if opts["max_io_size"] != 0 and (not _is_pow2(opts["max_io_size"]) or opts["max_io_size"] < 8192):
        raise create_failed
    opts["max_aq_depth"] = max(opts["max_aq_depth"], 32)
    if opts["kas"] == 0 or opts["min_kato"] == 0:
        raise create_failed
    kas_ms = opts["kas"] * 100
    opts["min_kato"] = -(-opts["min_kato"] // kas_ms) * kas_ms
    for key, pool in (("iobuf_small_cache_size", IOBUF_SMALL_POOL), ("iobuf_large_cache_size", IOBUF_LARGE_POOL)):
        cache = opts[key]
        if cache not in (0, U32_MAX) and cache * CORE_COUNT > pool:
            opts[key] = pool // CORE_COUNT // 2
    tcp = _tcp_options(params, opts)
    st.transports[name] = Transport(name, opts, tcp)
    return True


def _tcp_options(params: Mapping[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """nvmf_tcp_create: the TCP-specific options and the fix-ups it applies."""
    failed = RpcError(INTERNAL_ERROR, "Failed to create transport.")
    tcp: dict[str, Any] = {"c2h_success": True, "sock_priority": 0, "control_msg_num": 32}
    try:
        tcp.update(_decode(params, TCP_SPEC, relaxed=True))
    except RpcError:
        raise failed from None
    if tcp["sock_priority"] > 16:
        raise failed
    if tcp["control_msg_num"] == 0 and opts["in_capsule_data_size"] < 8192:
        tcp["control_msg_num"] = 32
    opts["in_capsule_data_size"] = min(opts["in_capsule_data_size"], opts["max_io_size"])
    if opts["max_queue_depth"] < 2:
        opts["max_queue_depth"] = 128
    if not 2 <= opts["max_aq_depth"] <= 4096:
        opts["max_aq_depth"] = 128
    if opts["max_io_size"] // IOBUF_LARGE_BUFSIZE > 16:
        raise failed
    return tcp


@rpc("nvmf_get_transports")
async def nvmf_get_transports(target: Target, params: Any) -> Any:
    p = _decode(params, {"trtype": ("str", False), "tgt_name": ("str", False)}) if params is not None else {}
    _check_tgt(p)
    st = nvmf_state(target)
    if "trtype" in p:
        t = st.transport(p["trtype"])
        if t is None:
            raise errno_error(ENODEV)
        return [t.to_json()]
    return [t.to_json() for t in st.transports.values()]


# ---- subsystems --------------------------------------------------------------------------------

CREATE_SPEC: dict[str, tuple[str, bool]] = {
    "nqn": ("str", True),
    "serial_number": ("sn", False),
    "model_number": ("mn", False),
    "tgt_name": ("str", False),
    "max_namespaces": ("u32", False),
    "allow_any_host": ("bool", False),
    "ana_reporting": ("bool", False),
    "min_cntlid": ("u16", False),
    "max_cntlid": ("u16", False),
    "max_discard_size_kib": ("u64", False),
    "max_write_zeroes_size_kib": ("u64", False),
    "dmrsl": ("u32", False),
    "wzsl": ("u8", False),
    "passthrough": ("bool", False),
    "enable_nssr": ("bool", False),
}


@rpc("nvmf_get_subsystems")
async def nvmf_get_subsystems(target: Target, params: Any) -> Any:
    p = _decode(params, {"nqn": ("str", False), "tgt_name": ("str", False)}) if params is not None else {}
    _check_tgt(p)
    st = nvmf_state(target)
    if "nqn" in p:
        sub = st.get(p["nqn"])
        if sub is None:
            raise errno_error(ENODEV)
        return [sub.to_json()]
    return [s.to_json() for s in st.listed()]


@rpc("nvmf_create_subsystem")
async def nvmf_create_subsystem(target: Target, params: Any) -> Any:
    p = _decode(params, CREATE_SPEC)
    _check_tgt(p, f"Unable to find target {p.get('tgt_name')}")
    st = nvmf_state(target)
    nqn: str = p["nqn"]
    dmrsl: int = p.get("dmrsl", 2097152)
    wzsl: int = p.get("wzsl", 12)
    if "max_discard_size_kib" in p and p["max_discard_size_kib"] != U64_MAX:
        dmrsl = (p["max_discard_size_kib"] << 1) & U32_MAX
    if "max_write_zeroes_size_kib" in p and p["max_write_zeroes_size_kib"] != U64_MAX:
        kib: int = p["max_write_zeroes_size_kib"]
        if kib == 0:
            wzsl = 0
        elif kib >= 8 and _is_pow2(kib):
            wzsl = ((kib >> 2).bit_length() - 1) & U8_MAX
        else:
            raise invalid_params(f"Invalid max_write_zeroes_size_kib {kib}")
    if nqn in st.subsystems or not nqn_is_valid(nqn) or len(st.subsystems) >= st.max_subsystems:
        raise RpcError(INTERNAL_ERROR, f"Unable to create subsystem {nqn}")
    min_cntlid: int = p.get("min_cntlid", MIN_CNTLID)
    max_cntlid: int = p.get("max_cntlid", MAX_CNTLID)
    if min_cntlid > max_cntlid or not (MIN_CNTLID <= min_cntlid <= MAX_CNTLID) or max_cntlid > MAX_CNTLID:
        raise invalid_params(f"Invalid cntlid range [{min_cntlid}-{max_cntlid}]")
    sub = Subsystem(nqn, "NVMe", p.get("max_namespaces") or DEFAULT_NAMESPACES)
    if "serial_number" in p:
        sub.serial_number = p["serial_number"]
    if "model_number" in p:
        sub.model_number = p["model_number"]
    sub.allow_any_host = p.get("allow_any_host", False)
    sub.ana_reporting = p.get("ana_reporting", False)
    sub.min_cntlid, sub.max_cntlid = min_cntlid, max_cntlid
    sub.dmrsl, sub.wzsl = dmrsl, wzsl
    sub.passthrough = p.get("passthrough", False)
    sub.enable_nssr = p.get("enable_nssr", False)
    st.subsystems[nqn] = sub
    return True


@rpc("nvmf_delete_subsystem")
async def nvmf_delete_subsystem(target: Target, params: Any) -> Any:
    p = _decode(params, {"nqn": ("str", True), "tgt_name": ("str", False)})
    _check_tgt(p)
    st = nvmf_state(target)
    sub = _subsystem(st, p["nqn"])
    async with st.lock:
        del st.subsystems[sub.nqn]
        listeners, sub.listeners = sub.listeners, []
        for li in listeners:
            await _transport_stop_listen(target, st, li.trid)
        keyring = target.state(KeyringState)
        for host in sub.hosts:
            _put_host_keys(keyring, host)
        sub.hosts = []
        for nsid in list(sub.namespaces):
            sub.remove_ns(nsid)
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return True


# ---- listeners ---------------------------------------------------------------------------------

ADD_LISTENER_SPEC: dict[str, tuple[str, bool]] = {
    "nqn": ("str", True),
    "listen_address": ("listen_address", True),
    "tgt_name": ("str", False),
    "secure_channel": ("bool", False),
    "ana_state": ("ana_state", False),
    "sock_impl": ("str", False),
}


@rpc("nvmf_subsystem_add_listener")
async def nvmf_subsystem_add_listener(target: Target, params: Any) -> Any:
    p = _decode(params, ADD_LISTENER_SPEC, relaxed=True)
    _check_tgt(p)
    st = nvmf_state(target)
    sub = _subsystem(st, p["nqn"])
    trid = _trid_from(p["listen_address"])
    secure: bool = p.get("secure_channel", False)
    if sub.allow_any_host and secure:
        raise RpcError(INTERNAL_ERROR, "Cannot establish secure channel, when 'allow_any_host' is set")
    async with st.lock:
        if st.get(sub.nqn) is not sub:
            raise invalid_params()
        if sub.find_listener(trid) is not None:
            raise invalid_params()
        tl = await _transport_listen(target, st, trid, secure, p.get("sock_impl"))
        used = {li.id for li in sub.listeners}
        lid = next((i for i in range(MAX_LISTENERS_PER_SUBSYSTEM) if i not in used), None)
        if lid is None or st.get(sub.nqn) is not sub:
            await _transport_stop_listen(target, st, trid)
            raise invalid_params()
        state = p.get("ana_state", "optimized")
        sub.listeners.insert(
            0, Listener(tl.trid, tl.transport, [state] * sub.max_namespaces, secure, p.get("sock_impl"), lid)
        )
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return True


@rpc("nvmf_subsystem_remove_listener")
async def nvmf_subsystem_remove_listener(target: Target, params: Any) -> Any:
    p = _decode(params, {"nqn": ("str", True), "listen_address": ("listen_address", True), "tgt_name": ("str", False)})
    _check_tgt(p)
    st = nvmf_state(target)
    sub = _subsystem(st, p["nqn"])
    trid = _trid_from(p["listen_address"])
    if st.transport(trid.trtype) is None:
        raise invalid_params()
    async with st.lock:
        li = sub.find_listener(trid)
        if li is None:
            raise invalid_params()
        sub.listeners.remove(li)
        nvme_tcp.subsystem_changed(target, sub.nqn)
        await _transport_stop_listen(target, st, li.trid)
    return True


@rpc("nvmf_subsystem_listener_set_ana_state")
async def nvmf_subsystem_listener_set_ana_state(target: Target, params: Any) -> Any:
    p = _decode(
        params,
        {
            "nqn": ("str", True),
            "listen_address": ("listen_address", True),
            "ana_state": ("ana_state", True),
            "tgt_name": ("str", False),
            "anagrpid": ("u32", False),
        },
    )
    _check_tgt(p)
    st = nvmf_state(target)
    sub = st.get(p["nqn"])
    if sub is None:
        raise invalid_params(f"Unable to find subsystem with NQN {p['nqn']}")
    trid = _trid_from(p["listen_address"])
    failed = RpcError(INTERNAL_ERROR, "error setting ANA state: -22")
    anagrpid: int = p.get("anagrpid", 0)
    if not sub.ana_reporting or anagrpid > sub.max_namespaces:
        raise failed
    li = sub.find_listener(trid)
    if li is None:
        raise failed
    state: str = p["ana_state"]
    for i in range(len(li.ana_states)):
        if anagrpid in (0, i + 1):
            li.ana_states[i] = state
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return True


QUERY_SPEC: dict[str, tuple[str, bool]] = {"nqn": ("str", True), "tgt_name": ("str", False)}


@rpc("nvmf_subsystem_get_listeners")
async def nvmf_subsystem_get_listeners(target: Target, params: Any) -> Any:
    p = _decode(params, QUERY_SPEC)
    _check_tgt(p, "Unable to find a target")
    sub = _subsystem(nvmf_state(target), p["nqn"])
    return [sub.listener_json(li) for li in sub.listeners]


@rpc("nvmf_subsystem_get_controllers")
async def nvmf_subsystem_get_controllers(target: Target, params: Any) -> Any:
    p = _decode(params, QUERY_SPEC)
    _check_tgt(p, "Unable to find a target")
    sub = _subsystem(nvmf_state(target), p["nqn"])
    return nvme_tcp.controllers(target, sub.nqn)


@rpc("nvmf_subsystem_get_qpairs")
async def nvmf_subsystem_get_qpairs(target: Target, params: Any) -> Any:
    p = _decode(params, QUERY_SPEC)
    _check_tgt(p, "Unable to find a target")
    sub = _subsystem(nvmf_state(target), p["nqn"])
    return nvme_tcp.qpairs(target, sub.nqn)


# ---- namespaces --------------------------------------------------------------------------------


def _separate_metadata(bdev: Bdev) -> bool:
    md_size = getattr(bdev, "md_size", 0)
    return bool(md_size) and not getattr(bdev, "md_interleave", False)


@rpc("nvmf_subsystem_add_ns")
async def nvmf_subsystem_add_ns(target: Target, params: Any) -> Any:
    p = _decode(
        params, {"nqn": ("str", True), "namespace": ("namespace", True), "tgt_name": ("str", False)}, relaxed=True
    )
    _check_tgt(p)
    st = nvmf_state(target)
    sub = _subsystem(st, p["nqn"])
    n: dict[str, Any] = p["namespace"]
    nsid: int = n.get("nsid", 0)
    max_nsid = sub.max_namespaces
    if nsid == U32_MAX:
        raise invalid_params()
    if nsid == 0:
        nsid = next((i for i in range(1, max_nsid + 1) if i not in sub.namespaces), 0)
        if nsid == 0:
            raise invalid_params()
    if nsid > max_nsid or nsid in sub.namespaces:
        raise invalid_params()
    anagrpid: int = n.get("anagrpid", 0) or nsid
    if anagrpid > max_nsid:
        raise invalid_params()
    bdev = target.find_bdev(n["bdev_name"])
    if bdev is None or bdev.claim_type is not None or _separate_metadata(bdev):
        raise invalid_params()
    if sub.passthrough and bdev.module != "nvme":
        raise invalid_params()
    uuid = n.get("uuid")
    if uuid is None or uuidlib.UUID(uuid).int == 0:
        uuid = bdev.uuid
    nguid: str = n.get("nguid", "").upper()
    if not nguid.strip("0"):
        nguid = uuidlib.UUID(bdev.uuid).hex.upper()
    eui64 = n.get("eui64")
    ns = Namespace(
        sub,
        nsid,
        bdev,
        nguid,
        str(uuidlib.UUID(uuid)),
        anagrpid,
        eui64.upper() if eui64 is not None else None,
        n.get("no_auto_visible", False),
        n.get("ptpl_file"),
    )
    try:
        bdev.claim(ns, CLAIM_EXCLUSIVE_WRITE)
    except RpcError:
        raise invalid_params() from None
    bdev.open(ns)
    sub.namespaces[nsid] = ns
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return nsid


@rpc("nvmf_subsystem_remove_ns")
async def nvmf_subsystem_remove_ns(target: Target, params: Any) -> Any:
    p = _decode(params, {"nqn": ("str", True), "nsid": ("u32", True), "tgt_name": ("str", False)})
    _check_tgt(p)
    sub = _subsystem(nvmf_state(target), p["nqn"])
    if sub.remove_ns(p["nsid"]) is None:
        raise invalid_params()
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return True


@rpc("nvmf_subsystem_set_ns_ana_group")
async def nvmf_subsystem_set_ns_ana_group(target: Target, params: Any) -> Any:
    p = _decode(
        params, {"nqn": ("str", True), "nsid": ("u32", True), "anagrpid": ("u32", True), "tgt_name": ("str", False)}
    )
    _check_tgt(p)
    sub = _subsystem(nvmf_state(target), p["nqn"])
    anagrpid: int = p["anagrpid"]
    ns = sub.namespaces.get(p["nsid"])
    if anagrpid == 0 or anagrpid > sub.max_namespaces or ns is None:
        raise invalid_params()
    ns.anagrpid = anagrpid
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return True


async def _ns_visible(target: Target, params: Any, visible: bool) -> Any:
    p = _decode(
        params, {"nqn": ("str", True), "nsid": ("u32", True), "host": ("str", True), "tgt_name": ("str", False)}
    )
    _check_tgt(p)
    sub = _subsystem(nvmf_state(target), p["nqn"])
    host: str = p["host"]
    ns = sub.namespaces.get(p["nsid"])
    if not nqn_is_valid(host) or ns is None or not ns.no_auto_visible:
        raise invalid_params()
    if visible and host not in ns.hosts:
        ns.hosts.insert(0, host)
    elif not visible and host in ns.hosts:
        ns.hosts.remove(host)
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return True


@rpc("nvmf_ns_add_host")
async def nvmf_ns_add_host(target: Target, params: Any) -> Any:
    return await _ns_visible(target, params, True)


@rpc("nvmf_ns_remove_host")
async def nvmf_ns_remove_host(target: Target, params: Any) -> Any:
    return await _ns_visible(target, params, False)


# ---- hosts -------------------------------------------------------------------------------------


def _put_host_keys(keyring: KeyringState, host: Host) -> None:
    keyring.put(host.dhchap_key)
    keyring.put(host.dhchap_ctrlr_key)
    keyring.put(host.psk)
    host.dhchap_key = host.dhchap_ctrlr_key = host.psk = None


@rpc("nvmf_subsystem_add_host")
async def nvmf_subsystem_add_host(target: Target, params: Any) -> Any:
    p = _decode(
        params,
        {
            "nqn": ("str", True),
            "host": ("str", True),
            "tgt_name": ("str", False),
            "dhchap_key": ("str", False),
            "dhchap_ctrlr_key": ("str", False),
        },
        relaxed=True,
    )
    _check_tgt(p)
    st = nvmf_state(target)
    sub = _subsystem(st, p["nqn"])
    key = ckey = None
    if "dhchap_key" in p:
        key = find_key(target, p["dhchap_key"])
        if key is None:
            raise invalid_params()
    if "dhchap_ctrlr_key" in p:
        ckey = find_key(target, p["dhchap_ctrlr_key"])
        if ckey is None:
            raise invalid_params()
    hostnqn: str = p["host"]
    if not nqn_is_valid(hostnqn) or sub.find_host(hostnqn) is not None or (ckey is not None and key is None):
        raise _failed()
    psk = _transport_psk(target, st, params)
    keyring = target.state(KeyringState)
    host = Host(
        hostnqn,
        keyring.hold(key) if key is not None else None,
        keyring.hold(ckey) if ckey is not None else None,
        keyring.hold(psk) if psk is not None else None,
    )
    sub.hosts.insert(0, host)
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return True


def _transport_psk(target: Target, st: NvmfState, params: Mapping[str, Any]) -> Key | None:
    """nvmf_tcp_subsystem_add_host: a `psk` names a keyring key holding a TLS PSK interchange string."""
    if st.transport("TCP") is None or "psk" not in params:
        return None
    psk = params["psk"]
    if not isinstance(psk, str):
        raise _failed()
    key = find_key(target, psk)
    if key is None:
        raise _failed()
    try:
        text = key.read().decode(errors="replace").strip()
    except OSError:
        raise _failed() from None
    if not text.startswith("NVMeTLSkey-1:"):
        raise _failed()
    return key


@rpc("nvmf_subsystem_remove_host")
async def nvmf_subsystem_remove_host(target: Target, params: Any) -> Any:
    p = _decode(
        params, {"nqn": ("str", True), "host": ("str", True), "tgt_name": ("str", False), "timeout_ms": ("u64", False)}
    )
    _check_tgt(p)
    sub = _subsystem(nvmf_state(target), p["nqn"])
    host = sub.find_host(p["host"])
    if host is None:
        raise _failed()
    sub.hosts.remove(host)
    _put_host_keys(target.state(KeyringState), host)
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return True


@rpc("nvmf_subsystem_set_keys")
async def nvmf_subsystem_set_keys(target: Target, params: Any) -> Any:
    p = _decode(
        params,
        {
            "nqn": ("str", True),
            "host": ("str", True),
            "tgt_name": ("str", False),
            "dhchap_key": ("str", False),
            "dhchap_ctrlr_key": ("str", False),
        },
    )
    _check_tgt(p, "Invalid parameters")
    sub = _subsystem(nvmf_state(target), p["nqn"])
    key = ckey = None
    if "dhchap_key" in p:
        key = find_key(target, p["dhchap_key"])
        if key is None:
            raise invalid_params()
    if "dhchap_ctrlr_key" in p:
        ckey = find_key(target, p["dhchap_ctrlr_key"])
        if ckey is None:
            raise invalid_params()
    host = sub.find_host(p["host"])
    if host is None or (key is None and ckey is not None):
        raise RpcError(-22, "Invalid argument")
    keyring = target.state(KeyringState)
    keyring.put(host.dhchap_key)
    keyring.put(host.dhchap_ctrlr_key)
    host.dhchap_key = keyring.hold(key) if key is not None else None
    host.dhchap_ctrlr_key = keyring.hold(ckey) if ckey is not None else None
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return True


@rpc("nvmf_subsystem_allow_any_host")
async def nvmf_subsystem_allow_any_host(target: Target, params: Any) -> Any:
    p = _decode(params, {"nqn": ("str", True), "allow_any_host": ("bool", True), "tgt_name": ("str", False)})
    _check_tgt(p)
    sub = _subsystem(nvmf_state(target), p["nqn"])
    sub.allow_any_host = p["allow_any_host"]
    nvme_tcp.subsystem_changed(target, sub.nqn)
    return True


# ---- discovery referrals -----------------------------------------------------------------------

REFERRAL_SPEC: dict[str, tuple[str, bool]] = {
    "address": ("listen_address", True),
    "tgt_name": ("str", False),
    "secure_channel": ("bool", False),
    "subnqn": ("str", False),
}


def _referral_trid(p: Mapping[str, Any]) -> Trid:
    trid = _trid_from(p["address"])
    subnqn: str = p.get("subnqn") or ""
    if len(subnqn.encode()) > 223:
        raise invalid_params("Invalid subsystem NQN")
    return Trid(trid.trtype, trid.adrfam, trid.traddr, trid.trsvcid, subnqn or DISCOVERY_NQN)


@rpc("nvmf_discovery_add_referral")
async def nvmf_discovery_add_referral(target: Target, params: Any) -> Any:
    p = _decode(params, REFERRAL_SPEC, relaxed=True)
    _check_tgt(p)
    st = nvmf_state(target)
    trid = _referral_trid(p)
    if trid.trtype in ("TCP", "RDMA") and not trid.trsvcid:
        raise RpcError(INTERNAL_ERROR, "Service ID is required.")
    if not nqn_is_valid(trid.subnqn):
        raise _failed()
    if not any(r.trid.same(trid) for r in st.referrals):
        st.referrals.insert(0, Referral(trid, p.get("secure_channel", False)))
    return True


@rpc("nvmf_discovery_remove_referral")
async def nvmf_discovery_remove_referral(target: Target, params: Any) -> Any:
    p = _decode(params, {"address": ("listen_address", True), "tgt_name": ("str", False), "subnqn": ("str", False)})
    _check_tgt(p)
    st = nvmf_state(target)
    trid = _referral_trid(p)
    ref = next((r for r in st.referrals if r.trid.same(trid)), None)
    if ref is None:
        raise RpcError(INTERNAL_ERROR, "Unable to remove a referral.")
    st.referrals.remove(ref)
    return True


@rpc("nvmf_discovery_get_referrals")
async def nvmf_discovery_get_referrals(target: Target, params: Any) -> Any:
    p = _decode(params, {"tgt_name": ("str", False)}) if params is not None else {}
    _check_tgt(p, "Unable to find a target")
    return [r.to_json() for r in nvmf_state(target).referrals]


# ---- target-wide -------------------------------------------------------------------------------


@rpc("nvmf_get_stats")
async def nvmf_get_stats(target: Target, params: Any) -> Any:
    p = _decode(params, {"tgt_name": ("str", False)}) if params is not None else {}
    _check_tgt(p)
    st = nvmf_state(target)
    admin = io = 0
    for sub in st.subsystems.values():
        for qp in nvme_tcp.qpairs(target, sub.nqn):
            if qp.get("qid") == 0:
                admin += 1
            else:
                io += 1
    group = {
        "name": "nvmf_tgt_poll_group_000",
        "admin_qpairs": admin,
        "io_qpairs": io,
        "current_admin_qpairs": admin,
        "current_io_qpairs": io,
        "current_unassociated_qpairs": 0,
        "pending_bdev_io": 0,
        "completed_nvme_io": 0,
        "transports": [{"trtype": t.name} for t in st.transports.values()],
    }
    return {"tick_rate": TICK_RATE, "poll_groups": [group]}


@rpc("nvmf_get_targets")
async def nvmf_get_targets(target: Target, params: Any) -> Any:
    require_no_params(params, "nvmf_get_targets has no parameters.")
    return [TGT_NAME]


STARTUP_ONLY = (
    "Method may only be called before framework is initialized. Use --wait-for-rpc command line "
    "parameter and then issue this RPC before the framework_start_init RPC."
)


def _startup_only(name: str) -> None:
    async def handler(target: Target, params: Any) -> Any:
        raise RpcError(-1, STARTUP_ONLY)

    rpc(name)(handler)


for _name in ("nvmf_set_config", "nvmf_set_max_subsystems", "nvmf_set_crdt"):
    _startup_only(_name)
