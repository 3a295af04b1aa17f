"""The admin API's method table, and :class:`StoreReadSide`: the read-only methods answered from the
records of the virtualization database.

Every method has a schema file ``schemas/api/<method>.json``; mutating methods go to a
:class:`~spdkvirt.api.service.Service`, queries to a :class:`~spdkvirt.api.service.ReadSide`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spdkvirt.api.errors import NotFound
from spdkvirt.api.service import JsonObject, Params, ReadSide, Service
from spdkvirt.store import Store, keys

Handler = Callable[[Params], Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    """One API method: its name, whether it changes anything, and a one-line summary."""

    name: str
    mutating: bool
    summary: str


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("volume_create", True, "create a volume"),
        Method("volume_delete", True, "delete a volume"),
        Method("volume_resize", True, "grow a volume"),
        Method("volume_snapshot", True, "snapshot a volume"),
        Method("volume_clone", True, "create a volume from a snapshot"),
        Method("volume_list", False, "list volumes"),
        Method("volume_get", False, "show one volume"),
        Method("export_create", True, "export a volume over NVMe-oF or iSCSI"),
        Method("export_delete", True, "remove an export"),
        Method("export_list", False, "list exports"),
        Method("node_list", False, "list storage nodes"),
        Method("device_list", False, "list devices"),
        Method("device_set_state", True, "put a device into or out of maintenance, or retire it"),
        Method("cluster_status", False, "summarise the cluster"),
        Method("epoch_list", False, "list the latest quiesce epochs"),
    )
}


def handlers(service: Service, reads: ReadSide) -> dict[str, Handler]:
    """The callable behind each method: the service's for changes, the read side's for queries."""
    table: dict[str, Handler] = {}
    for m in METHODS.values():
        target: Any = service if m.mutating else reads
        table[m.name] = getattr(target, m.name)
    return table


# read side over the store

_API_VOLUME_STATES = ("healthy", "degraded", "rebuilding", "failed", "creating", "deleting")


def volume_view(
    record: Mapping[str, Any], export_ids: list[str], status: Mapping[str, Any] | None, *, alive: frozenset[str]
) -> JsonObject:
    """A volume record as the API shows it; ``status``: what its owner last reported of it (status
    record); ``alive``: the nodes that hold their liveness. A volume with a copy on any other node
    is not healthy, whatever its record says yet (degraded)."""
    legs = list(record.get("legs", ()))
    state = str(record.get("state", "healthy"))
    state = "healthy" if state == "online" else state
    if state == "healthy" and any(leg.get("node") not in alive for leg in legs):
        state = "degraded"
    rebuild = (status or {}).get("rebuild")
    percent = float(rebuild["percent"]) if rebuild is not None else None
    rebuilding = rebuild is not None or any(leg.get("state") == "rebuilding" for leg in legs)
    if rebuilding and state in ("healthy", "degraded"):
        state = "rebuilding"
    out: JsonObject = {
        "name": record["name"],
        "uuid": record["uuid"],
        "size_bytes": record["size_bytes"],
        "redundancy": record["redundancy"],
        "thin": bool(record.get("thin", True)),
        "raid_level": record["raid_level"],
        "owner_node": record["owner_node"],
        "state": state,
        "epoch": record.get("epoch", 0),
        "generation": record["generation"],
        "legs": [_leg_view(leg) for leg in legs],
        "exports": sorted(export_ids),
    }
    if state == "rebuilding" and percent is not None:
        out["rebuild_percent"] = round(min(100.0, max(0.0, percent)), 1)
    if record.get("detached"):
        out["detached"] = [_leg_view(leg) for leg in record["detached"]]
    return out


def _leg_view(leg: Mapping[str, Any]) -> JsonObject:
    return {k: leg[k] for k in ("leg_id", "node", "device", "state", "lvol_uuid") if k in leg}


def export_state(record: Mapping[str, Any], status: Mapping[str, Any] | None, alive: bool) -> str:
    """What an export is, as far as SPDK is known to serve it: ``active`` only while its node is
    alive and last reported the volume exported there; a wanted export not served (yet) is
    ``pending``."""
    state = str(record["state"])
    if state != "active":
        return state
    served = status is not None and status.get("node") == record["node"] and bool(status.get("exported"))
    return "active" if served and alive else "pending"


def export_view(record: Mapping[str, Any], status: Mapping[str, Any] | None, alive: bool) -> JsonObject:
    """An export record as the API shows it; ``status``: its volume's status record, ``alive``:
    whether the export's node holds its liveness (the state shown is :func:`export_state`)."""
    out: JsonObject = {k: record[k] for k in ("volume", "export_id", "protocol", "node")}
    out["state"] = export_state(record, status, alive)
    if "nvmf" in record:
        nvmf = record["nvmf"]
        out["nvmf"] = {
            "subnqn": nvmf["subnqn"],
            "listeners": [{"traddr": x["traddr"], "trsvcid": x["trsvcid"]} for x in nvmf["listeners"]],
            "hosts": list(nvmf.get("hosts", ())),
            "allow_any_host": bool(nvmf.get("allow_any_host", False)),
        }
        if nvmf.get("dhchap"):
            out["nvmf"]["dhchap"] = dict(nvmf["dhchap"])
    if "iscsi" in record:
        iscsi = record["iscsi"]
        out["iscsi"] = {
            "target_name": iscsi["target_name"],
            "portals": list(iscsi["portals"]),
            "initiators": list(iscsi.get("initiators", ["ANY"])),
            "netmasks": list(iscsi.get("netmasks", ["ANY"])),
        }
        chap = iscsi.get("chap")
        if chap:
            # user names only: secrets are never shown
            out["iscsi"]["chap"] = {k: chap[k] for k in ("user", "mutual_user") if chap.get(k)}
    return out


def device_view(record: Mapping[str, Any], legs: int) -> JsonObject:
    """A device record as the API shows it, with the number of volume legs on it."""
    out: JsonObject = {k: record[k] for k in ("node", "device_id", "bdev", "state", "size_bytes")}
    free = record.get("lvstore", {}).get("free_bytes")
    if free is not None:
        out["free_bytes"] = free
    out["legs"] = legs
    return out


def epoch_view(record: Mapping[str, Any]) -> JsonObject:
    """An epoch record as the API shows it."""
    out: JsonObject = {
        k: record[k] for k in ("number", "reason", "phase", "affected_volumes", "affected_nodes", "acks")
    }
    shown = ("started_at", "updated_at", "timings", "expelled", "failed", "remaps", "fencing", "remapped_at",
             "finished_at")  # fmt: skip
    out.update({k: record[k] for k in shown if k in record})
    return out


class StoreReadSide:
    """The API's queries, answered from the records in the store, read each time: volumes with their
    owners' status records (rebuild progress), nodes with their agents' liveness records."""

    def __init__(self, store: Store, *, election: str = "master") -> None:
        self.store = store
        self.election = election

    async def _values(self, prefix: str) -> list[dict[str, Any]]:
        return [kv.value for kv in (await self.store.range(prefix)).kvs]

    async def _export_ids(self, volume: str | None = None) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for e in await self._values(keys.exports(volume)):
            found.setdefault(e["volume"], []).append(e["export_id"])
        return found

    async def volume_list(self, params: Params) -> list[JsonObject]:
        exports = await self._export_ids()
        status = {s["volume"]: s for s in await self._values(keys.prefix("status"))}
        alive = await self._alive()
        return [
            volume_view(v, exports.get(v["name"], []), status.get(v["name"]), alive=alive)
            for v in await self._values(keys.prefix("volume"))
        ]

    async def volume_get(self, params: Params) -> JsonObject:
        name = params["name"]
        kv = await self.store.get(keys.volume(name))
        if kv is None:
            raise NotFound.of("volume", name)
        exports = await self._export_ids(name)
        status = await self.store.get(keys.status(name))
        shown = status.value if status is not None else None
        return volume_view(kv.value, exports.get(name, []), shown, alive=await self._alive())

    async def _alive(self) -> frozenset[str]:
        """The nodes that hold their liveness."""
        return frozenset(a["node"] for a in await self._values(keys.prefix("alive")))

    async def export_list(self, params: Params) -> list[JsonObject]:
        exports = await self._values(keys.exports(params.get("volume")))
        status = {s["volume"]: s for s in await self._values(keys.prefix("status"))}
        alive = await self._alive()
        return [export_view(e, status.get(e["volume"]), e["node"] in alive) for e in exports]

    async def _legs_per_device(self) -> Counter[tuple[str, str]]:
        volumes = await self._values(keys.prefix("volume"))
        return Counter((leg["node"], leg["device"]) for v in volumes for leg in v.get("legs", ()))

    async def node_list(self, params: Params) -> list[JsonObject]:
        devices = Counter(d["node"] for d in await self._values(keys.devices()))
        alive = await self._alive()
        return [
            {
                "node_id": n["node_id"],
                "address": n["address"],
                "state": n["state"],
                "alive": n["node_id"] in alive,
                "devices": devices.get(n["node_id"], 0),
            }
            | {k: n[k] for k in ("spdk", "reason", "fence", "fence_status") if k in n}
            for n in await self._values(keys.prefix("node"))
        ]

    async def device_list(self, params: Params) -> list[JsonObject]:
        legs = await self._legs_per_device()
        records = await self._values(keys.devices(params.get("node")))
        return [device_view(d, legs.get((d["node"], d["device_id"]), 0)) for d in records]

    async def cluster_status(self, params: Params) -> JsonObject:
        nodes = Counter(n["state"] for n in await self._values(keys.prefix("node")))
        devices = Counter(d["state"] for d in await self._values(keys.devices()))
        volumes = Counter(v["state"] for v in await self.volume_list({}))
        out: JsonObject = {
            "nodes": {"up": nodes.pop("up", 0), "down": nodes.pop("down", 0), **nodes},
            "devices": dict(devices),
            "volumes": {s: volumes.get(s, 0) for s in _API_VOLUME_STATES},
        }
        leader = await self.store.election(self.election).leader()
        if leader is not None:
            out["leader"] = {"holder": leader.holder, "token": leader.token}
            if "address" in leader.record:
                out["leader"]["address"] = leader.record["address"]
        epochs = (await self.store.range(keys.prefix("epoch"))).kvs
        if epochs:
            out["epoch"] = epochs[-1].value["number"]
        return out

    async def epoch_list(self, params: Params) -> list[JsonObject]:
        limit = int(params.get("limit", 20))
        records = await self._values(keys.prefix("epoch"))
        return [epoch_view(e) for e in reversed(records[-limit:])]
