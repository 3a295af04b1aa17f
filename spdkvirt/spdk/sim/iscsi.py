"""iSCSI target: portal, initiator and auth groups, target nodes, LUNs.

The configuration side of SPDK's iSCSI target, with its quirks: target names get the node base
prefix, LUNs open their bdev without claiming it, groups can be deleted while target nodes use
them (their maps go, a `chap_group` dangles), auth secrets come back in clear text. There is no
iSCSI data path: a portal's address is checked the way SPDK's listen would check it (numeric host,
valid port, not already taken) but nothing is served on it.
"""

from __future__ import annotations

import base64
import errno
import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .bdev import Bdev
from .decode import decode
from .errors import INTERNAL_ERROR, INVALID_PARAMS, RpcError, invalid_params
from .nvmf import NvmfState
from .registry import rpc
from .target import Target

NODE_BASE = "iqn.2016-06.io.spdk"
MAX_QUEUE_DEPTH = 64
MAX_TARGET_NAME = 223
MAX_INITIATOR_NAME = 223
MAX_INITIATOR_ADDR = 64
MAX_INITIATORS = 256
MAX_NETMASKS = 256
MAX_PORTAL_ADDR = 256
MAX_PORTAL_PORT = 32
MAX_CHAP_LEN = 255
MAX_LUN = 256
MAX_PORTS_PER_DEV = 4
MAX_DEVS = 1024
HISTOGRAM_GRANULARITY = 7
HISTOGRAM_RANGES = 64
TSC_RATE = 2_100_000_000

OPTIONS: dict[str, Any] = {
    "node_base": NODE_BASE,
    "max_sessions": 128,
    "max_connections_per_session": 2,
    "max_queue_depth": MAX_QUEUE_DEPTH,
    "default_time2wait": 2,
    "default_time2retain": 20,
    "first_burst_length": 8192,
    "immediate_data": True,
    "allow_duplicated_isid": False,
    "error_recovery_level": 0,
    "nop_timeout": 60,
    "nop_in_interval": 30,
    "disable_chap": False,
    "require_chap": False,
    "mutual_chap": False,
    "chap_group": 0,
    "max_large_datain_per_connection": 64,
    "max_r2t_per_connection": 4,
    "pdu_pool_size": 36864,
    "immediate_data_pool_size": 16384,
    "data_out_pool_size": 2048,
}


# ---- decoding ----------------------------------------------------------------------------------


def _obj_list(spec: Mapping[str, tuple[str, bool]], limit: int) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not isinstance(v, list) or len(v) > limit:
            return False
        try:
            for item in v:
                decode(item, spec)
        except RpcError:
            return False
        return True

    return check


def _str_list(limit: int) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return isinstance(v, list) and len(v) <= limit and all(isinstance(x, str) for x in v)

    return check


EXTRA: dict[str, Callable[[Any], bool]] = {
    "portals": _obj_list({"host": ("str", True), "port": ("str", True)}, 1024),
    "pg_ig_maps": _obj_list({"ig_tag": ("i32", True), "pg_tag": ("i32", True)}, 256),
    "luns": _obj_list({"lun_id": ("i32", False), "bdev_name": ("str", False)}, 64),
    "secrets": _obj_list(
        {"user": ("str", True), "secret": ("str", True), "muser": ("str", False), "msecret": ("str", False)}, 64
    ),
    "names": _str_list(256),
}


def _decode(params: Any, spec: Mapping[str, tuple[str, bool]]) -> dict[str, Any]:
    """The iSCSI RPCs answer every decode failure with -32602 "Invalid parameters"."""
    try:
        return decode(params, spec, code=INVALID_PARAMS, extra=EXTRA)
    except RpcError:
        raise invalid_params() from None


def _no_params(params: Any, method: str) -> None:
    if params is not None:
        raise invalid_params(f"{method} requires no parameters")


def _strerror(err: int) -> str:
    return os.strerror(err)


def chap_params_ok(disable: bool, require: bool, mutual: bool, group: int) -> bool:
    """iscsi_check_chap_params: auto, none, CHAP or mutual CHAP, and a non-negative group."""
    if group < 0:
        return False
    return (disable, require, mutual) in (
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (False, True, True),
    )


# ---- state -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Portal:
    host: str
    port: str

    def to_json(self) -> dict[str, str]:
        return {"host": self.host, "port": self.port}


class PortalGroup:
    def __init__(self, tag: int, private: bool, auth: tuple[bool, bool, bool, int]) -> None:
        self.tag = tag
        self.private = private
        self.portals: list[Portal] = []
        self.disable_chap, self.require_chap, self.mutual_chap, self.chap_group = auth
        self.accepting = True

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "portals": [p.to_json() for p in self.portals], "private": self.private}


class InitiatorGroup:
    def __init__(self, tag: int) -> None:
        self.tag = tag
        self.initiators: list[str] = []
        self.netmasks: list[str] = []

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "initiators": list(self.initiators), "netmasks": list(self.netmasks)}


@dataclass(frozen=True)
class AuthSecret:
    user: str
    secret: str
    muser: str = ""  # mutual CHAP, only when set
    msecret: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"user": self.user, "secret": self.secret}
        if self.muser:
            out["muser"] = self.muser
            out["msecret"] = self.msecret
        return out


class AuthGroup:
    def __init__(self, tag: int) -> None:
        self.tag = tag
        self.secrets: list[AuthSecret] = []

    def add_secret(self, user: str, secret: str, muser: str | None, msecret: str | None) -> int:
        """iscsi_auth_group_add_secret: 0 or a negative errno."""
        if muser is not None and msecret is None:
            return -errno.EINVAL
        if any(s.user == user for s in self.secrets):
            return -errno.EEXIST
        entry = AuthSecret(user, secret) if muser is None else AuthSecret(user, secret, muser, msecret or "")
        if any(len(v.encode()) > MAX_CHAP_LEN for v in (entry.user, entry.secret, entry.muser, entry.msecret)):
            return -errno.EINVAL
        self.secrets.append(entry)
        return 0

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "secrets": [s.to_json() for s in self.secrets]}


class Lun:
    """A SCSI LUN: its bdev is open (no claim, no I/O channel before a login) and its removal
    removes the LUN."""

    def __init__(self, node: TargetNode, lun_id: int, bdev: Bdev) -> None:
        self.node = node
        self.id = lun_id
        self.bdev = bdev

    def close(self) -> None:
        self.bdev.unwatch(self)

    def base_removed(self, bdev: Bdev) -> None:
        if self in self.node.luns:
            self.node.luns.remove(self)
        self.close()

    def to_json(self) -> dict[str, Any]:
        return {"bdev_name": self.bdev.name, "lun_id": self.id}


class PgMap:
    """A portal group mapped to a target node, with the initiator groups allowed through it."""

    def __init__(self, pg: PortalGroup) -> None:
        self.pg = pg
        self.igs: list[InitiatorGroup] = []
        self.redirect: tuple[str, str] | None = None


class TargetNode:
    def __init__(self, name: str, alias: str, dev_id: int) -> None:
        self.name = name
        self.alias = alias
        self.dev_id = dev_id
        self.luns: list[Lun] = []  # by LUN id
        self.pg_maps: list[PgMap] = []
        self.queue_depth = MAX_QUEUE_DEPTH
        self.disable_chap = False
        self.require_chap = False
        self.mutual_chap = False
        self.chap_group = 0
        self.header_digest = False
        self.data_digest = False
        self.histogram = False

    # ---- LUNs ----------------------------------------------------------------------------
    def add_lun(self, target: Target, bdev_name: str | None, lun_id: int) -> bool:
        """spdk_scsi_dev_add_lun: an explicit id must be free, -1 takes the lowest free one."""
        if lun_id >= MAX_LUN:
            return False
        if lun_id == -1:
            lun_id = 0
            for lun in self.luns:
                if lun.id > lun_id:
                    break
                lun_id = lun.id + 1
            if lun_id >= MAX_LUN:
                return False
        elif any(lun.id == lun_id for lun in self.luns):
            return False
        if bdev_name is None:
            return False
        bdev = target.find_bdev(bdev_name)
        if bdev is None or bdev.claim_type is not None:
            return False  # a LUN opens its bdev for writing: refused (-EPERM) while it is claimed
        lun = Lun(self, lun_id, bdev)
        bdev.watch(lun)
        pos = next((i for i, other in enumerate(self.luns) if other.id > lun_id), len(self.luns))
        self.luns.insert(pos, lun)
        return True

    def close_luns(self) -> None:
        for lun in self.luns:
            lun.close()
        self.luns = []

    # ---- maps ----------------------------------------------------------------------------
    def find_pg_map(self, pg: PortalGroup) -> PgMap | None:
        return next((m for m in self.pg_maps if m.pg is pg), None)

    def add_map(self, st: IscsiState, pg_tag: int, ig_tag: int) -> bool:
        pg = st.find_pg(pg_tag)
        ig = st.find_ig(ig_tag)
        if pg is None or ig is None:
            return False
        pg_map = self.find_pg_map(pg)
        new = pg_map is None
        if pg_map is None:
            if len(self.pg_maps) >= MAX_PORTS_PER_DEV:
                return False
            pg_map = PgMap(pg)
            self.pg_maps.append(pg_map)
        if ig in pg_map.igs:
            if new:
                self.pg_maps.remove(pg_map)
            return False
        pg_map.igs.append(ig)
        return True

    def delete_map(self, st: IscsiState, pg_tag: int, ig_tag: int) -> bool:
        pg = st.find_pg(pg_tag)
        ig = st.find_ig(ig_tag)
        if pg is None or ig is None:
            return False
        pg_map = self.find_pg_map(pg)
        if pg_map is None or ig not in pg_map.igs:
            return False
        pg_map.igs.remove(ig)
        if not pg_map.igs:
            self.pg_maps.remove(pg_map)
        return True

    def add_maps(self, st: IscsiState, maps: list[dict[str, Any]]) -> bool:
        """iscsi_target_node_add_pg_ig_maps: all or nothing."""
        for i, m in enumerate(maps):
            if not self.add_map(st, m["pg_tag"], m["ig_tag"]):
                for done in reversed(maps[:i]):
                    self.delete_map(st, done["pg_tag"], done["ig_tag"])
                return False
        return True

    def remove_maps(self, st: IscsiState, maps: list[dict[str, Any]]) -> bool:
        """iscsi_target_node_remove_pg_ig_maps: a failure puts back what was removed."""
        for i, m in enumerate(maps):
            if not self.delete_map(st, m["pg_tag"], m["ig_tag"]):
                for done in reversed(maps[:i]):
                    if not self.add_map(st, done["pg_tag"], done["ig_tag"]):
                        self.pg_maps = []
                        break
                return False
        return True

    def set_chap(self, disable: bool, require: bool, mutual: bool, group: int) -> bool:
        if not chap_params_ok(disable, require, mutual, group):
            return False
        self.disable_chap, self.require_chap, self.mutual_chap, self.chap_group = disable, require, mutual, group
        return True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.alias:
            out["alias_name"] = self.alias
        out["pg_ig_maps"] = [{"pg_tag": m.pg.tag, "ig_tag": ig.tag} for m in self.pg_maps for ig in m.igs]
        out["luns"] = [lun.to_json() for lun in self.luns]
        out.update(
            queue_depth=self.queue_depth,
            disable_chap=self.disable_chap,
            require_chap=self.require_chap,
            mutual_chap=self.mutual_chap,
            chap_group=self.chap_group,
            header_digest=self.header_digest,
            data_digest=self.data_digest,
        )
        return out


class IscsiState:
    """SPDK's global iSCSI state (g_iscsi): groups, portals and target nodes in creation order."""

    def __init__(self) -> None:
        self.options = dict(OPTIONS)
        self.portal_groups: list[PortalGroup] = []
        self.initiator_groups: list[InitiatorGroup] = []
        self.auth_groups: list[AuthGroup] = []
        self.targets: list[TargetNode] = []

    @property
    def discovery_auth(self) -> tuple[bool, bool, bool, int]:
        o = self.options
        return o["disable_chap"], o["require_chap"], o["mutual_chap"], o["chap_group"]

    def find_pg(self, tag: int) -> PortalGroup | None:
        return next((g for g in self.portal_groups if g.tag == tag), None)

    def find_ig(self, tag: int) -> InitiatorGroup | None:
        return next((g for g in self.initiator_groups if g.tag == tag), None)

    def find_ag(self, tag: int) -> AuthGroup | None:
        return next((g for g in self.auth_groups if g.tag == tag), None)

    def find_target(self, name: str) -> TargetNode | None:
        low = name.lower()
        return next((t for t in self.targets if t.name.lower() == low), None)

    def portals(self) -> list[Portal]:
        return [p for g in self.portal_groups for p in g.portals]

    def free_dev_id(self, pending: set[int]) -> int | None:
        used = {t.dev_id for t in self.targets} | pending
        return next((i for i in range(MAX_DEVS) if i not in used), None)


# ---- portal address checks ---------------------------------------------------------------------


def _strtol(text: str) -> int:
    """C strtol(text, NULL, 0): optional sign, 0x for hex, leading 0 for octal, stops at junk."""
    s = text.lstrip(" \t\n\r\f\v")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    base = 10
    if s[:2].lower() == "0x" and len(s) > 2 and s[2] in "0123456789abcdefABCDEF":
        base, s = 16, s[2:]
    elif s[:1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    n = 0
    for c in s:
        d = digits.find(c.lower())
        if d < 0:
            break
        n = n * base + d
    return sign * n


def _portal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The numeric address a portal listens on (SPDK strips IPv6 brackets), or None."""
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _overlaps(ip: Any, port: int, other_host: str, other_port: int) -> bool:
    other = _portal_ip(other_host)
    if other is None or other_port != port:
        return False
    return bool(other == ip or other.is_unspecified or ip.is_unspecified)


def address_in_use(target: Target, host: str, port: int) -> bool:
    """Whether an iSCSI portal of this target listens where host:port would."""
    ip = _portal_ip(host)
    if ip is None:
        return False
    return any(_overlaps(ip, port, p.host, _strtol(p.port)) for p in target.state(IscsiState).portals())


def _can_listen(target: Target, st: IscsiState, portal: Portal, opened: list[Portal]) -> bool:
    """iscsi_portal_open: a valid port on a numeric address that nothing listens on yet."""
    port = _strtol(portal.port)
    if port <= 0 or port > 65535:
        return False
    ip = _portal_ip(portal.host)
    if ip is None:
        return False
    for other in [*st.portals(), *opened]:
        if _overlaps(ip, port, other.host, _strtol(other.port)):
            return False
    for tl in target.state(NvmfState).tr_listeners:
        if tl.trid.trsvcid.isdigit() and _overlaps(ip, port, tl.trid.traddr, int(tl.trid.trsvcid)):
            return False
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((str(ip), port))
    except OSError:
        return False
    return True


# ---- portal groups -----------------------------------------------------------------------------


@rpc("iscsi_get_portal_groups")
async def iscsi_get_portal_groups(target: Target, params: Any) -> Any:
    _no_params(params, "iscsi_get_portal_groups")
    return [g.to_json() for g in target.state(IscsiState).portal_groups]


@rpc("iscsi_create_portal_group")
async def iscsi_create_portal_group(target: Target, params: Any) -> Any:
    p = _decode(
        params,
        {"tag": ("i32", True), "portals": ("portals", True), "private": ("bool", False), "wait": ("bool", False)},
    )
    st = target.state(IscsiState)
    pg = PortalGroup(p["tag"], p.get("private", False), st.discovery_auth)
    known = st.portals()
    for item in p["portals"]:
        host: str = item["host"]
        port: str = item["port"]
        if len(host.encode()) > MAX_PORTAL_ADDR or len(port.encode()) > MAX_PORTAL_PORT:
            raise invalid_params()
        if any(other.host == host and other.port == port for other in [*known, *pg.portals]):
            raise invalid_params()
        if host.lower() == "[*]":
            host = "[::]"
        elif host == "*":
            host = "0.0.0.0"
        pg.portals.append(Portal(host, port))
    opened: list[Portal] = []
    for portal in pg.portals:
        if not _can_listen(target, st, portal, opened):
            raise invalid_params()
        opened.append(portal)
    if st.find_pg(pg.tag) is not None:
        raise invalid_params()
    pg.accepting = not p.get("wait", False)
    st.portal_groups.append(pg)
    return True


@rpc("iscsi_start_portal_group")
async def iscsi_start_portal_group(target: Target, params: Any) -> Any:
    p = _decode(params, {"tag": ("i32", True)})
    pg = target.state(IscsiState).find_pg(p["tag"])
    if pg is None:
        raise invalid_params()
    pg.accepting = True
    return True


@rpc("iscsi_delete_portal_group")
async def iscsi_delete_portal_group(target: Target, params: Any) -> Any:
    p = _decode(params, {"tag": ("i32", True)})
    st = target.state(IscsiState)
    pg = st.find_pg(p["tag"])
    if pg is None:
        raise invalid_params()
    st.portal_groups.remove(pg)
    for node in st.targets:
        pg_map = node.find_pg_map(pg)
        if pg_map is not None:
            node.pg_maps.remove(pg_map)
    return True


AUTH_SPEC: dict[str, tuple[str, bool]] = {
    "disable_chap": ("bool", False),
    "require_chap": ("bool", False),
    "mutual_chap": ("bool", False),
    "chap_group": ("i32", False),
}


def _auth(p: Mapping[str, Any]) -> tuple[bool, bool, bool, int]:
    return (
        p.get("disable_chap", False),
        p.get("require_chap", False),
        p.get("mutual_chap", False),
        p.get("chap_group", 0),
    )


@rpc("iscsi_portal_group_set_auth")
async def iscsi_portal_group_set_auth(target: Target, params: Any) -> Any:
    p = _decode(params, {"tag": ("i32", True), **AUTH_SPEC})
    pg = target.state(IscsiState).find_pg(p["tag"])
    if pg is None:
        raise invalid_params(f"Could not find portal group {p['tag']}")
    auth = _auth(p)
    if not chap_params_ok(*auth):
        raise invalid_params("Invalid combination of auth params")
    pg.disable_chap, pg.require_chap, pg.mutual_chap, pg.chap_group = auth
    return True


# ---- initiator groups --------------------------------------------------------------------------


def _any(name: str) -> str:
    """SPDK turns the first "ALL" in an initiator name or netmask into "ANY"."""
    return name.replace("ALL", "ANY", 1)


def _add_names(items: list[str], new: list[str], limit: int, max_len: int) -> bool:
    """Add names one by one (duplicates and overlong names fail); on failure undo them all."""
    for i, name in enumerate(new):
        if len(items) >= limit or len(name.encode()) > max_len or name in items:
            for done in reversed(new[:i]):
                if done in items:  # undone by the name as given, as SPDK does
                    items.remove(done)
            return False
        items.append(_any(name))
    return True


def _remove_names(items: list[str], names: list[str], limit: int, max_len: int) -> bool:
    removed: list[str] = []
    for name in names:
        if name not in items:
            if not _add_names(items, removed, limit, max_len):
                items.clear()
            return False
        items.remove(name)
        removed.append(name)
    return True


@rpc("iscsi_get_initiator_groups")
async def iscsi_get_initiator_groups(target: Target, params: Any) -> Any:
    _no_params(params, "iscsi_get_initiator_groups")
    return [g.to_json() for g in target.state(IscsiState).initiator_groups]


@rpc("iscsi_create_initiator_group")
async def iscsi_create_initiator_group(target: Target, params: Any) -> Any:
    p = _decode(params, {"tag": ("i32", True), "initiators": ("names", True), "netmasks": ("names", True)})
    st = target.state(IscsiState)
    if not p["initiators"] or not p["netmasks"]:
        raise invalid_params()
    ig = InitiatorGroup(p["tag"])
    if not _add_names(ig.initiators, p["initiators"], MAX_INITIATORS, MAX_INITIATOR_NAME):
        raise invalid_params()
    if not _add_names(ig.netmasks, p["netmasks"], MAX_NETMASKS, MAX_INITIATOR_ADDR):
        raise invalid_params()
    if st.find_ig(ig.tag) is not None:
        raise invalid_params()
    st.initiator_groups.append(ig)
    return True


IG_CHANGE_SPEC: dict[str, tuple[str, bool]] = {
    "tag": ("i32", True),
    "initiators": ("names", False),
    "netmasks": ("names", False),
}


NameChange = Callable[[list[str], list[str], int, int], bool]


def _change_ig_members(target: Target, params: Any, apply: NameChange, undo: NameChange) -> bool:
    """Apply a change to an initiator group's initiators, then its netmasks; undo the first if the second fails."""
    p = _decode(params, IG_CHANGE_SPEC)
    ig = target.state(IscsiState).find_ig(p["tag"])
    if ig is None:
        raise invalid_params()
    names: list[str] = p.get("initiators", [])
    if not apply(ig.initiators, names, MAX_INITIATORS, MAX_INITIATOR_NAME):
        raise invalid_params()
    if not apply(ig.netmasks, p.get("netmasks", []), MAX_NETMASKS, MAX_INITIATOR_ADDR):
        undo(ig.initiators, names, MAX_INITIATORS, MAX_INITIATOR_NAME)
        raise invalid_params()
    return True


@rpc("iscsi_initiator_group_add_initiators")
async def iscsi_initiator_group_add_initiators(target: Target, params: Any) -> Any:
    return _change_ig_members(target, params, _add_names, _remove_names)


@rpc("iscsi_initiator_group_remove_initiators")
async def iscsi_initiator_group_remove_initiators(target: Target, params: Any) -> Any:
    return _change_ig_members(target, params, _remove_names, _add_names)


@rpc("iscsi_delete_initiator_group")
async def iscsi_delete_initiator_group(target: Target, params: Any) -> Any:
    p = _decode(params, {"tag": ("i32", True)})
    st = target.state(IscsiState)
    ig = st.find_ig(p["tag"])
    if ig is None:
        raise invalid_params()
    st.initiator_groups.remove(ig)
    for node in st.targets:
        for pg_map in list(node.pg_maps):
            if ig in pg_map.igs:
                pg_map.igs.remove(ig)
            if not pg_map.igs:
                node.pg_maps.remove(pg_map)
    return True


# ---- auth groups -------------------------------------------------------------------------------


@rpc("iscsi_get_auth_groups")
async def iscsi_get_auth_groups(target: Target, params: Any) -> Any:
    _no_params(params, "iscsi_get_auth_groups")
    return [g.to_json() for g in target.state(IscsiState).auth_groups]


@rpc("iscsi_create_auth_group")
async def iscsi_create_auth_group(target: Target, params: Any) -> Any:
    p = _decode(params, {"tag": ("i32", True), "secrets": ("secrets", False)})
    st = target.state(IscsiState)
    tag: int = p["tag"]
    if st.find_ag(tag) is not None:
        raise invalid_params(f"Could not add auth group ({tag}), {_strerror(errno.EEXIST)}")
    group = AuthGroup(tag)
    for s in p.get("secrets", []):
        rc = group.add_secret(s["user"], s["secret"], s.get("muser"), s.get("msecret"))
        if rc != 0:
            raise invalid_params(f"Could not add secret to auth group ({tag}), {_strerror(-rc)}")
    st.auth_groups.append(group)
    return True


@rpc("iscsi_delete_auth_group")
async def iscsi_delete_auth_group(target: Target, params: Any) -> Any:
    p = _decode(params, {"tag": ("i32", True)})
    st = target.state(IscsiState)
    group = st.find_ag(p["tag"])
    if group is None:
        raise invalid_params(f"Could not find auth group ({p['tag']})")
    st.auth_groups.remove(group)
    return True


@rpc("iscsi_auth_group_add_secret")
async def iscsi_auth_group_add_secret(target: Target, params: Any) -> Any:
    p = _decode(
        params,
        {
            "tag": ("i32", True),
            "user": ("str", True),
            "secret": ("str", True),
            "muser": ("str", False),
            "msecret": ("str", False),
        },
    )
    tag: int = p["tag"]
    group = target.state(IscsiState).find_ag(tag)
    if group is None:
        raise invalid_params(f"Could not find auth group ({tag})")
    rc = group.add_secret(p["user"], p["secret"], p.get("muser"), p.get("msecret"))
    if rc != 0:
        raise invalid_params(f"Could not add secret to auth group ({tag}), {_strerror(-rc)}")
    return True


@rpc("iscsi_auth_group_remove_secret")
async def iscsi_auth_group_remove_secret(target: Target, params: Any) -> Any:
    p = _decode(params, {"tag": ("i32", True), "user": ("str", True)})
    tag: int = p["tag"]
    group = target.state(IscsiState).find_ag(tag)
    if group is None:
        raise invalid_params(f"Could not find auth group ({tag})")
    secret = next((s for s in group.secrets if s.user == p["user"]), None)
    if secret is None:
        raise invalid_params(f"Could not delete secret from CHAP group ({tag}), {_strerror(errno.ENODEV)}")
    group.secrets.remove(secret)
    return True


# ---- target nodes ------------------------------------------------------------------------------


def _iscsi_name_ok(name: str) -> bool:
    """check_iscsi_name: length, no forbidden characters, and the iqn. date format."""
    raw = name.encode()
    if len(raw) > MAX_TARGET_NAME:
        return False
    for b in raw:
        if b <= 0x2C or b == 0x2F or 0x3B <= b <= 0x40 or 0x5B <= b <= 0x60 or 0x7B <= b <= 0x7F:
            return False
    if raw[:4].lower() == b"iqn.":
        date = raw[4:12]
        return len(date) == 8 and date[:4].isdigit() and date[4:5] == b"-" and date[5:7].isdigit() and date[7:8] == b"."
    return True


def _full_name(st: IscsiState, name: str) -> str:
    if name[:4].lower() in ("iqn.", "eui.", "naa."):
        return name
    return f"{st.options['node_base']}:{name}"


CREATE_NODE_SPEC: dict[str, tuple[str, bool]] = {
    "name": ("str", True),
    "alias_name": ("str", True),
    "pg_ig_maps": ("pg_ig_maps", True),
    "luns": ("luns", True),
    "queue_depth": ("i32", True),
    "disable_chap": ("bool", False),
    "require_chap": ("bool", False),
    "mutual_chap": ("bool", False),
    "chap_group": ("i32", False),
    "header_digest": ("bool", False),
    "data_digest": ("bool", False),
}


@rpc("iscsi_get_target_nodes")
async def iscsi_get_target_nodes(target: Target, params: Any) -> Any:
    _no_params(params, "iscsi_get_target_nodes")
    return [t.to_json() for t in target.state(IscsiState).targets]


@rpc("iscsi_create_target_node")
async def iscsi_create_target_node(target: Target, params: Any) -> Any:
    p = _decode(params, CREATE_NODE_SPEC)
    st = target.state(IscsiState)
    auth = _auth(p)
    maps: list[dict[str, Any]] = p["pg_ig_maps"]
    luns: list[dict[str, Any]] = p["luns"]
    if not chap_params_ok(*auth) or not maps:
        raise invalid_params()
    name = _full_name(st, p["name"])
    alias: str = p["alias_name"]
    if not _iscsi_name_ok(name) or len(alias.encode()) > MAX_TARGET_NAME:
        raise invalid_params()
    if not luns or not any(lun.get("lun_id", 0) == 0 for lun in luns):
        raise invalid_params()
    if any("bdev_name" not in lun for lun in luns):
        raise invalid_params()
    dev_id = st.free_dev_id(set())
    if dev_id is None:
        raise invalid_params()
    node = TargetNode(name, alias, dev_id)
    for lun in luns:
        if not node.add_lun(target, lun["bdev_name"], lun.get("lun_id", 0)):
            node.close_luns()
            raise invalid_params()
    if not node.add_maps(st, maps):
        node.close_luns()
        raise invalid_params()
    node.disable_chap, node.require_chap, node.mutual_chap, node.chap_group = auth
    node.header_digest = p.get("header_digest", False)
    node.data_digest = p.get("data_digest", False)
    depth: int = p["queue_depth"]
    node.queue_depth = depth if 0 < depth <= st.options["max_queue_depth"] else st.options["max_queue_depth"]
    if st.find_target(name) is not None:
        node.close_luns()
        raise invalid_params()
    st.targets.append(node)
    return True


def _node(st: IscsiState, name: str) -> TargetNode:
    node = st.find_target(name)
    if node is None:
        raise invalid_params()
    return node


@rpc("iscsi_delete_target_node")
async def iscsi_delete_target_node(target: Target, params: Any) -> Any:
    p = _decode(params, {"name": ("str", True)})
    st = target.state(IscsiState)
    node = st.find_target(p["name"])
    if node is None:
        raise RpcError(-errno.ENOENT, _strerror(errno.ENOENT))
    st.targets.remove(node)
    node.close_luns()
    node.pg_maps = []
    return True


@rpc("iscsi_target_node_add_lun")
async def iscsi_target_node_add_lun(target: Target, params: Any) -> Any:
    p = _decode(params, {"name": ("str", True), "bdev_name": ("str", True), "lun_id": ("i32", False)})
    node = _node(target.state(IscsiState), p["name"])
    lun_id: int = p.get("lun_id", -1)
    if lun_id < -1 or not node.add_lun(target, p["bdev_name"], lun_id):
        raise invalid_params()
    return True


@rpc("iscsi_target_node_set_auth")
async def iscsi_target_node_set_auth(target: Target, params: Any) -> Any:
    p = _decode(params, {"name": ("str", True), **AUTH_SPEC})
    node = target.state(IscsiState).find_target(p["name"])
    if node is None:
        raise invalid_params(f"Could not find target {p['name']}")
    if not node.set_chap(*_auth(p)):
        raise invalid_params("Invalid combination of auth params")
    return True


MAPS_SPEC: dict[str, tuple[str, bool]] = {"name": ("str", True), "pg_ig_maps": ("pg_ig_maps", True)}


@rpc("iscsi_target_node_add_pg_ig_maps")
async def iscsi_target_node_add_pg_ig_maps(target: Target, params: Any) -> Any:
    p = _decode(params, MAPS_SPEC)
    st = target.state(IscsiState)
    if not _node(st, p["name"]).add_maps(st, p["pg_ig_maps"]):
        raise invalid_params()
    return True


@rpc("iscsi_target_node_remove_pg_ig_maps")
async def iscsi_target_node_remove_pg_ig_maps(target: Target, params: Any) -> Any:
    p = _decode(params, MAPS_SPEC)
    st = target.state(IscsiState)
    if not _node(st, p["name"]).remove_maps(st, p["pg_ig_maps"]):
        raise invalid_params()
    return True


def _numeric_address(host: str, port: str) -> bool:
    flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    try:
        socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, flags)
    except (OSError, UnicodeError):
        return False
    return True


@rpc("iscsi_target_node_set_redirect")
async def iscsi_target_node_set_redirect(target: Target, params: Any) -> Any:
    p = _decode(
        params,
        {
            "name": ("str", True),
            "pg_tag": ("i32", True),
            "redirect_host": ("str", False),
            "redirect_port": ("str", False),
        },
    )
    st = target.state(IscsiState)
    name: str = p["name"]
    node = st.find_target(name)
    if node is None:
        raise invalid_params(f"Target {name} is not found")
    failed = invalid_params(f"Failed to redirect target {name}, (-22): {_strerror(errno.EINVAL)}")
    pg = st.find_pg(p["pg_tag"])
    if pg is None or pg.private:
        raise failed
    pg_map = node.find_pg_map(pg)
    if pg_map is None:
        raise failed
    host, port = p.get("redirect_host"), p.get("redirect_port")
    if host is None and port is None:
        pg_map.redirect = None
        return True
    if host is None or port is None or not _numeric_address(host, port):
        raise failed
    if any(pt.host == host and pt.port == port for pt in pg.portals):
        raise failed
    pg_map.redirect = (host, port)
    return True


@rpc("iscsi_target_node_request_logout")
async def iscsi_target_node_request_logout(target: Target, params: Any) -> Any:
    p = _decode(params, {"name": ("str", True), "pg_tag": ("i32", False)})
    if target.state(IscsiState).find_target(p["name"]) is None:
        raise invalid_params(f"Target {p['name']} is not found")
    return True


@rpc("iscsi_enable_histogram")
async def iscsi_enable_histogram(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True), "enable": ("bool", True)}, code=INTERNAL_ERROR)
    node = _node(target.state(IscsiState), p["name"])
    node.histogram = p["enable"]
    return True


@rpc("iscsi_get_histogram")
async def iscsi_get_histogram(target: Target, params: Any) -> Any:
    p = decode(params, {"name": ("str", True)}, code=INTERNAL_ERROR)
    node = target.state(IscsiState).find_target(p["name"])
    if node is None:
        raise invalid_params("target not found")
    if not node.histogram:
        raise invalid_params("target's histogram function is not enabled")
    buckets = (1 << HISTOGRAM_GRANULARITY) * HISTOGRAM_RANGES
    return {
        "histogram": base64.b64encode(bytes(8 * buckets)).decode(),
        "granularity": HISTOGRAM_GRANULARITY,
        "min_range": 0,
        "max_range": HISTOGRAM_RANGES - 1,
        "tsc_rate": TSC_RATE,
    }


# ---- target-wide -------------------------------------------------------------------------------


@rpc("iscsi_get_options")
async def iscsi_get_options(target: Target, params: Any) -> Any:
    _no_params(params, "iscsi_get_options")
    return dict(target.state(IscsiState).options)


@rpc("iscsi_set_discovery_auth")
async def iscsi_set_discovery_auth(target: Target, params: Any) -> Any:
    p = _decode(params, AUTH_SPEC)
    auth = _auth(p)
    if not chap_params_ok(*auth):
        raise invalid_params("Invalid combination of CHAP params")
    o = target.state(IscsiState).options
    o["disable_chap"], o["require_chap"], o["mutual_chap"], o["chap_group"] = auth
    return True


@rpc("iscsi_get_connections")
async def iscsi_get_connections(target: Target, params: Any) -> Any:
    _no_params(params, "iscsi_get_connections")
    return []


@rpc("iscsi_get_stats")
async def iscsi_get_stats(target: Target, params: Any) -> Any:
    _no_params(params, "iscsi_get_stats")
    return {"invalid": 0, "running": 0, "exiting": 0, "exited": 0}


@rpc("scsi_get_devices")
async def scsi_get_devices(target: Target, params: Any) -> Any:
    _no_params(params, "scsi_get_devices")
    nodes = sorted(target.state(IscsiState).targets, key=lambda t: t.dev_id)
    return [{"id": t.dev_id, "device_name": t.name} for t in nodes]


@rpc("iscsi_set_options")
async def iscsi_set_options(target: Target, params: Any) -> Any:
    raise RpcError(
        -1,
        "Method may only be called before framework is initialized. Use --wait-for-rpc command line "
        "parameter and then issue this RPC before the framework_start_init RPC.",
    )
