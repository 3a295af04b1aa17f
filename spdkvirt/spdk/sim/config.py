"""framework_get_config: what save_config collects, section by section.

Each subsystem's section is built from the live state of the modules, in the order SPDK writes
it. Where SPDK writes a group of calls as a batch, the section holds a nested list; without
`with_batches` the batches are flattened, as SPDK does.

Most module state is read through the modules' own query methods (nvmf_get_subsystems,
bdev_raid_get_bdevs, iscsi_get_target_nodes...), whose objects SPDK builds with the same
writers as the config, plus a few settings that only the module state objects know.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import passthru
from .bdev import Bdev
from .decode import decode
from .error_bdev import ErrorState
from .errors import RpcError, invalid_params
from .framework import method_tables
from .iscsi import OPTIONS as ISCSI_OPTIONS
from .malloc import MallocBdev, NullBdev
from .nvme import default_options as nvme_default_options
from .registry import METHODS, rpc
from .target import Target

Entry = dict[str, Any]
Section = list[Any]  # entries, and batches (lists of entries)

NIL_UUID = "00000000-0000-0000-0000-000000000000"
DHCHAP_DIGESTS = ["sha256", "sha384", "sha512"]
DHCHAP_DHGROUPS = ["null", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"]
QOS_KEYS = ("rw_ios_per_sec", "rw_mbytes_per_sec", "r_mbytes_per_sec", "w_mbytes_per_sec")

BDEV_OPTIONS = {
    "bdev_io_pool_size": 65535,
    "bdev_io_cache_size": 256,
    "bdev_auto_examine": True,
    "iobuf_small_cache_size": 128,
    "iobuf_large_cache_size": 16,
}
RAID_OPTIONS = {"process_window_size_kb": 1024, "process_max_bandwidth_mb_sec": 0}
NVME_HOTPLUG = {"period_us": 100000, "enable": False}

IOBUF_OPTIONS = {
    "small_pool_count": 8192,
    "large_pool_count": 1024,
    "small_bufsize": 8192,
    "large_bufsize": 135168,
    "enable_numa": False,
}
SOCK_IMPL_OPTIONS = {
    "recv_buf_size": 2097152,
    "send_buf_size": 2097152,
    "enable_recv_pipe": True,
    "enable_quickack": False,
    "enable_placement_id": 0,
    "enable_zerocopy_send_server": True,
    "enable_zerocopy_send_client": False,
    "zerocopy_threshold": 0,
    "tls_version": 0,
    "enable_ktls": False,
}
ACCEL_OPTIONS = {
    "small_cache_size": 128,
    "large_cache_size": 16,
    "task_count": 2048,
    "sequence_count": 2048,
    "buf_count": 2048,
}
NVMF_CONFIG = {
    "discovery_filter": "match_any",
    "admin_cmd_passthru": {
        "identify_ctrlr": False,
        "identify_uuid_list": False,
        "get_log_page": False,
        "get_set_features": False,
        "sanitize": False,
        "security_send_recv": False,
        "fw_update": False,
        "nvme_mi": False,
        "vendor_specific": False,
    },
    "dhchap_digests": DHCHAP_DIGESTS,
    "dhchap_dhgroups": DHCHAP_DHGROUPS,
    "dup_host_policy": "allow",
}


def call(method: str, params: dict[str, Any] | None = None) -> Entry:
    """One saved RPC call; params-less calls (bdev_wait_for_examine) have no params member."""
    out: Entry = {"method": method}
    if params is not None:
        out["params"] = params
    return out


async def query(target: Target, method: str, params: Any = None) -> Any:
    """The result of one of the simulator's own methods, or None when it has none or fails."""
    handler = METHODS.get(method)
    if handler is None:
        return None
    try:
        return await handler(target, params)
    except RpcError:
        return None


def module_state(target: Target, module: str, cls_name: str) -> Any:
    """The state object of another simulator module, or None when that module has no such class."""
    try:
        mod = importlib.import_module(f"{__package__}.{module}")
    except ImportError:
        return None
    cls = getattr(mod, cls_name, None)
    return None if cls is None else target.state(cls)


def attr(obj: Any, default: Any, *names: str) -> Any:
    """The first of names that obj has (as attribute or mapping key), else default."""
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if obj is not None and not isinstance(obj, dict) and hasattr(obj, name):
            return getattr(obj, name)
    return default


def state_of_class(target: Target, module: str) -> list[Any]:
    """State objects that a module has created so far (class defined in that module)."""
    states: dict[type[Any], Any] = getattr(target, "_states", {})
    return [st for cls, st in states.items() if cls.__module__.rsplit(".", 1)[-1] == module]


# ---- bdev ---------------------------------------------------------------------------------
def raid_options(target: Target) -> dict[str, Any]:
    opts = dict(RAID_OPTIONS)
    for st in state_of_class(target, "raid"):
        src = attr(st, st, "options", "opts")
        for key, value in opts.items():
            opts[key] = attr(src, value, key)
    return opts


def nvme_config(target: Target, bdevs: list[Bdev]) -> Section:
    """bdev_nvme_config_json: options, a batch of attach calls, multipath policies, hotplug."""
    entries: list[Entry] = []
    try:
        nvme = importlib.import_module(f"{__package__}.nvme")
        entries = list(nvme.config_entries(target))
    except (ImportError, AttributeError):
        pass
    options = [e for e in entries if e["method"] == "bdev_nvme_set_options"]
    attach = [e for e in entries if e["method"] == "bdev_nvme_attach_controller"]
    hotplug = [e for e in entries if e["method"] == "bdev_nvme_set_hotplug"]
    others = [e for e in entries if e not in options and e not in attach and e not in hotplug]
    out: Section = options or [call("bdev_nvme_set_options", nvme_default_options())]
    out.append(attach)
    for bdev in bdevs:
        policy = attr(bdev, None, "policy") if bdev.module == "nvme" else None
        if policy == "active_active":
            mp: dict[str, Any] = {"name": bdev.name, "policy": policy}
            mp["selector"] = attr(bdev, "round_robin", "selector")
            if mp["selector"] == "round_robin":
                mp["rr_min_io"] = attr(bdev, 1, "rr_min_io", "min_io")
            out.append(call("bdev_nvme_set_multipath_policy", mp))
    out.extend(others)
    out.extend(hotplug or [call("bdev_nvme_set_hotplug", dict(NVME_HOTPLUG))])
    return out


def malloc_config(bdev: Bdev) -> Entry:
    md = bdev.extra_top_level()
    md_size = md.get("md_size", 0)
    data_block = bdev.block_size - md_size if md.get("md_interleave") else bdev.block_size
    return call(
        "bdev_malloc_create",
        {
            "name": bdev.name,
            "num_blocks": bdev.num_blocks,
            "block_size": bdev.block_size,
            "physical_block_size": attr(bdev, 0, "physical_block_size") or data_block,
            "uuid": bdev.uuid,
            "optimal_io_boundary": attr(bdev, 0, "optimal_io_boundary"),
            "md_size": md_size,
            "dif_type": md.get("dif_type", 0),
            "dif_is_head_of_md": md.get("dif_is_head_of_md", False),
            "dif_pi_format": md.get("dif_pi_format", 0),
            "numa_id": attr(bdev, -1, "numa_id"),
        },
    )


def null_config(bdev: Bdev) -> Entry:
    md = bdev.extra_top_level()
    md_size = md.get("md_size", 0)
    params: dict[str, Any] = {
        "name": bdev.name,
        "num_blocks": bdev.num_blocks,
        "block_size": bdev.block_size,
        "physical_block_size": attr(bdev, 0, "physical_block_size") or bdev.block_size - md_size,
        "md_size": md_size,
        "dif_type": md.get("dif_type", 0),
        "dif_is_head_of_md": md.get("dif_is_head_of_md", False),
        "dif_pi_format": md.get("dif_pi_format", 0),
        "uuid": bdev.uuid,
    }
    layout = bdev.layout()
    for key in (
        "preferred_write_granularity",
        "preferred_write_alignment",
        "optimal_write_size",
        "preferred_unmap_granularity",
        "preferred_unmap_alignment",
    ):
        params[key] = layout.get(key, 0)
    return call("bdev_null_create", params)


def raid_config(raid: dict[str, Any]) -> Entry | None:
    """bdev_raid_create for a raid without superblock (a superblock raid comes back by examine)."""
    if raid.get("superblock"):
        return None
    params: dict[str, Any] = {"name": raid["name"], "uuid": raid["uuid"]}
    if raid.get("strip_size_kb"):
        params["strip_size_kb"] = raid["strip_size_kb"]
    params["raid_level"] = raid["raid_level"]
    params["base_bdevs"] = [
        b.get("name") or f"removed_base_bdev_{slot}" for slot, b in enumerate(raid.get("base_bdevs_list", []))
    ]
    return call("bdev_raid_create", params)


def qos_config(bdev: Bdev) -> Entry | None:
    limits = {k: bdev.qos.get(k, 0) for k in QOS_KEYS if bdev.qos.get(k, 0) > 0}
    if not limits:
        return None
    return call("bdev_set_qos_limit", {"name": bdev.name, **limits})


async def bdev_section(target: Target) -> Section:
    out: Section = [call("bdev_set_options", dict(BDEV_OPTIONS)), *passthru.config_entries(target)]
    out.append(call("bdev_raid_set_options", raid_options(target)))
    for cfg in target.state(ErrorState).configs:
        params: dict[str, Any] = {"base_name": cfg.base_name}
        if cfg.uuid is not None and cfg.uuid != NIL_UUID:
            params["uuid"] = cfg.uuid
        out.append(call("bdev_error_create", params))
    bdevs = list(target.iter_bdevs())
    out.extend(nvme_config(target, bdevs))
    out.append([null_config(b) for b in bdevs if isinstance(b, NullBdev)])
    out.append([malloc_config(b) for b in bdevs if isinstance(b, MallocBdev)])
    raids = {r["name"]: r for r in await query(target, "bdev_raid_get_bdevs", {"category": "all"}) or []}
    for bdev in bdevs:
        entry: Entry | None = None
        own = getattr(bdev, "write_config_json", None)
        if callable(own):
            entry = own()
        elif bdev.name in raids and raids[bdev.name].get("uuid") == bdev.uuid:
            entry = raid_config(raids[bdev.name])
        if entry is not None:
            out.append(entry)
        qos = qos_config(bdev)
        if qos is not None:
            out.append(qos)
    out.append(call("bdev_wait_for_examine"))
    return out


# ---- nvmf ---------------------------------------------------------------------------------
def nvmf_subsystem_state(target: Target, nqn: str) -> Any:
    for st in state_of_class(target, "nvmf"):
        subs = attr(st, None, "subsystems")
        if isinstance(subs, dict) and nqn in subs:
            return subs[nqn]
        if isinstance(subs, list):
            for sub in subs:
                if attr(sub, None, "nqn") == nqn:
                    return sub
    return None


def nvmf_namespace_state(sub: Any, nsid: int) -> Any:
    namespaces = attr(sub, None, "namespaces", "ns")
    if isinstance(namespaces, dict):
        return namespaces.get(nsid)
    if isinstance(namespaces, list):
        for ns in namespaces:
            if attr(ns, None, "nsid") == nsid:
                return ns
    return None


async def nvmf_section(target: Target) -> Section:
    tgt = next((st for st in state_of_class(target, "nvmf") if hasattr(st, "subsystems")), None)
    crdt = list(attr(tgt, (0, 0, 0), "crdt"))
    out: Section = [
        call("nvmf_set_config", dict(NVMF_CONFIG)),
        call("nvmf_set_max_subsystems", {"max_subsystems": attr(tgt, 1024, "max_subsystems")}),
        call("nvmf_set_crdt", {"crdt1": crdt[0], "crdt2": crdt[1], "crdt3": crdt[2]}),
    ]
    for transport in await query(target, "nvmf_get_transports") or []:
        out.append(call("nvmf_create_transport", dict(transport)))
    for ref in await query(target, "nvmf_discovery_get_referrals") or []:
        out.append(call("nvmf_discovery_add_referral", dict(ref)))
    subsystems = await query(target, "nvmf_get_subsystems") or []
    nvme = [s for s in subsystems if s.get("subtype") == "NVMe"]
    creates, hosts, namespaces, ns_hosts, listeners = [], [], [], [], []
    for sub in nvme:
        nqn = sub["nqn"]
        st = nvmf_subsystem_state(target, nqn)
        ana = attr(st, None, "ana_reporting")
        if ana is None:
            ana = any("anagrpid" in ns for ns in sub.get("namespaces", []))
        params: dict[str, Any] = {
            "nqn": nqn,
            "allow_any_host": sub["allow_any_host"],
            "serial_number": sub.get("serial_number", ""),
            "model_number": sub.get("model_number", ""),
        }
        if sub.get("max_namespaces"):
            params["max_namespaces"] = sub["max_namespaces"]
        params.update(
            min_cntlid=sub.get("min_cntlid", 1),
            max_cntlid=sub.get("max_cntlid", 65519),
            ana_reporting=bool(ana),
            dmrsl=sub.get("dmrsl", 0),
            wzsl=sub.get("wzsl", 0),
            passthrough=sub.get("passthrough", False),
            enable_nssr=bool(attr(st, False, "enable_nssr")),
        )
        creates.append(call("nvmf_create_subsystem", params))
        known_hosts = {attr(h, None, "nqn"): h for h in attr(st, [], "hosts")}
        for host in sub.get("hosts", []):
            hp: dict[str, Any] = {"nqn": nqn, "host": host["nqn"]}
            hp.update({k: v for k, v in host.items() if k in ("dhchap_key", "dhchap_ctrlr_key")})
            psk = attr(known_hosts.get(host["nqn"]), None, "psk")
            if psk is not None:
                hp["psk"] = psk if isinstance(psk, str) else attr(psk, "", "name")
            hosts.append(call("nvmf_subsystem_add_host", hp))
        for ns in sub.get("namespaces", []):
            ns_st = nvmf_namespace_state(st, ns["nsid"])
            nsp: dict[str, Any] = {"nsid": ns["nsid"], "bdev_name": ns["bdev_name"]}
            ptpl = attr(ns_st, None, "ptpl_file")
            if ptpl:
                nsp["ptpl_file"] = ptpl
            for key in ("nguid", "eui64"):
                if ns.get(key) and set(ns[key]) != {"0"}:
                    nsp[key] = ns[key]
            if ns.get("uuid") and ns["uuid"] != NIL_UUID:
                nsp["uuid"] = ns["uuid"]
            if ana:
                nsp["anagrpid"] = ns.get("anagrpid", attr(ns_st, ns["nsid"], "anagrpid"))
            visible = attr(ns_st, None, "no_auto_visible")
            if visible is None:
                visible = not attr(ns_st, True, "auto_visible", "always_visible")
            nsp["no_auto_visible"] = bool(visible)
            namespaces.append(call("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": nsp}))
            for host in attr(ns_st, [], "hosts"):
                host_nqn = host if isinstance(host, str) else attr(host, "", "nqn")
                ns_hosts.append(call("nvmf_ns_add_host", {"nqn": nqn, "nsid": ns["nsid"], "host": host_nqn}))
    for sub in subsystems:
        st = nvmf_subsystem_state(target, sub["nqn"])
        known = attr(st, [], "listeners")
        for i, addr in enumerate(sub.get("listen_addresses", [])):
            li = known[i] if isinstance(known, list) and len(known) == len(sub["listen_addresses"]) else None
            lp: dict[str, Any] = {
                "nqn": sub["nqn"],
                "listen_address": {k: addr[k] for k in ("trtype", "adrfam", "traddr", "trsvcid") if k in addr},
                "secure_channel": bool(attr(li, False, "secure_channel")),
            }
            sock_impl = attr(li, None, "sock_impl")
            if sock_impl:
                lp["sock_impl"] = sock_impl
            listeners.append(call("nvmf_subsystem_add_listener", lp))
    out.extend([creates, hosts, namespaces, ns_hosts, listeners])
    return out


# ---- iscsi, keyring, static sections ------------------------------------------------------
async def iscsi_section(target: Target) -> Section:
    options = await query(target, "iscsi_get_options")
    out: Section = [call("iscsi_set_options", options if isinstance(options, dict) else dict(ISCSI_OPTIONS))]
    for method, getter in (
        ("iscsi_create_portal_group", "iscsi_get_portal_groups"),
        ("iscsi_create_initiator_group", "iscsi_get_initiator_groups"),
        ("iscsi_create_target_node", "iscsi_get_target_nodes"),
        ("iscsi_create_auth_group", "iscsi_get_auth_groups"),
    ):
        for obj in await query(target, getter) or []:
            out.append(call(method, obj))
            histogram = {"name": obj.get("name")}
            if method == "iscsi_create_target_node" and await query(target, "iscsi_get_histogram", histogram):
                out.append(call("iscsi_enable_histogram", {"name": obj["name"], "enable": True}))
    return out


async def keyring_section(target: Target) -> Section:
    st = module_state(target, "keyring", "KeyringState")
    keys = attr(st, {}, "keys")
    out: Section = []
    for key in keys.values() if isinstance(keys, dict) else keys:
        if attr(key, False, "removed") or attr(key, "keyring_file", "module") != "keyring_file":
            continue
        out.append(call("keyring_file_add_key", {"name": attr(key, "", "name"), "path": attr(key, "", "path")}))
    return out


async def sock_section(target: Target) -> Section:
    return [
        call("sock_set_default_impl", {"impl_name": "posix"}),
        call(
            "sock_impl_set_options",
            {"impl_name": "ssl", **SOCK_IMPL_OPTIONS, "recv_buf_size": 4096, "send_buf_size": 4096},
        ),
        call("sock_impl_set_options", {"impl_name": "posix", **SOCK_IMPL_OPTIONS}),
    ]


async def section(target: Target, name: str) -> Section | None:
    if name == "keyring":
        return await keyring_section(target)
    if name == "iobuf":
        return [call("iobuf_set_options", dict(IOBUF_OPTIONS))]
    if name == "sock":
        return await sock_section(target)
    if name == "accel":
        return [call("accel_set_options", dict(ACCEL_OPTIONS))]
    if name == "bdev":
        return await bdev_section(target)
    if name == "scheduler":
        return [call("framework_set_scheduler", {"name": "static"})]
    if name == "nvmf":
        return await nvmf_section(target)
    if name == "iscsi":
        return await iscsi_section(target)
    if name == "scsi":
        return None
    return []


def flatten(entries: Section) -> Section:
    out: Section = []
    for e in entries:
        if isinstance(e, list):
            out.extend(e)
        else:
            out.append(e)
    return out


@rpc("framework_get_config")
async def framework_get_config(target: Target, params: Any) -> Any:
    try:
        p = decode(params, {"name": ("str", True), "with_batches": ("bool", False)})
    except RpcError:
        raise invalid_params("Invalid arguments") from None
    name = p["name"]
    if name not in [s["subsystem"] for s in method_tables()["subsystems"]]:
        raise invalid_params(f"Subsystem '{name}' not found")
    entries = await section(target, name)
    if entries is None or p.get("with_batches"):
        return entries
    return flatten(entries)
