"""FakeService: an in-memory cluster behind the API, recording every call it gets."""

from __future__ import annotations

import uuid
from typing import Any

from spdkvirt.api.errors import AlreadyExists, InvalidState, NotFound, Refused
from spdkvirt.api.service import JsonObject, Params

NODES = ("n1", "n2", "n3")


class FakeService:
    """Both the Service and the ReadSide of the API, over dicts. ``calls`` lists (method, params)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.volumes: dict[str, JsonObject] = {}
        self.snapshots: dict[str, JsonObject] = {}
        self.exports: dict[tuple[str, str], JsonObject] = {}
        self.devices: dict[tuple[str, str], JsonObject] = {
            (n, "d0"): {"node": n, "device_id": "d0", "bdev": f"{n}-aio0", "state": "available", "size_bytes": 1 << 30}
            for n in NODES
        }
        self.fail_with: BaseException | None = None
        self.result_override: Any = None

    def _record(self, method: str, params: Params) -> None:
        self.calls.append((method, dict(params)))
        if self.fail_with is not None:
            raise self.fail_with

    def _volume(self, name: str, size: int, redundancy: int) -> JsonObject:
        legs = [
            {
                "leg_id": f"{name}-{i}",
                "node": NODES[i],
                "device": "d0",
                "state": "in_sync",
                "lvol_uuid": str(uuid.uuid4()),
            }
            for i in range(redundancy)
        ]
        return {
            "name": name,
            "uuid": str(uuid.uuid4()),
            "size_bytes": size,
            "redundancy": redundancy,
            "raid_level": "raid1" if redundancy > 1 else "none",
            "owner_node": NODES[0],
            "state": "healthy",
            "epoch": 0,
            "generation": 1,
            "legs": legs,
            "exports": [],
        }

    def _get(self, name: str) -> JsonObject:
        if name not in self.volumes:
            raise NotFound.of("volume", name)
        return self.volumes[name]

    # Service

    async def volume_create(self, params: Params) -> JsonObject:
        self._record("volume_create", params)
        if self.result_override is not None:
            return dict(self.result_override)
        name = params["name"]
        if name in self.volumes:
            raise AlreadyExists.of("volume", name)
        self.volumes[name] = self._volume(name, params["size_bytes"], params["redundancy"])
        return dict(self.volumes[name])

    async def volume_delete(self, params: Params) -> bool:
        self._record("volume_delete", params)
        vol = self._get(params["name"])
        if vol["exports"]:
            raise InvalidState(f"volume {vol['name']!r} has exports", {"kind": "volume", "name": vol["name"]})
        del self.volumes[params["name"]]
        return True

    async def volume_resize(self, params: Params) -> JsonObject:
        self._record("volume_resize", params)
        vol = self._get(params["name"])
        if params["size_bytes"] < vol["size_bytes"]:
            raise Refused.at("$.size_bytes", f"volume {vol['name']!r} cannot shrink")
        vol["size_bytes"] = params["size_bytes"]
        vol["generation"] += 1
        return dict(vol)

    async def volume_snapshot(self, params: Params) -> JsonObject:
        self._record("volume_snapshot", params)
        vol = self._get(params["name"])
        snap = params["snapshot_name"]
        if snap in self.snapshots:
            raise AlreadyExists.of("snapshot", snap)
        self.snapshots[snap] = {"snapshot_name": snap, "volume": vol["name"], "size_bytes": vol["size_bytes"]}
        return dict(self.snapshots[snap])

    async def volume_clone(self, params: Params) -> JsonObject:
        self._record("volume_clone", params)
        snap = self.snapshots.get(params["snapshot_name"])
        if snap is None:
            raise NotFound.of("snapshot", params["snapshot_name"])
        if params["name"] in self.volumes:
            raise AlreadyExists.of("volume", params["name"])
        self.volumes[params["name"]] = self._volume(params["name"], snap["size_bytes"], 2)
        return dict(self.volumes[params["name"]])

    async def export_create(self, params: Params) -> JsonObject:
        self._record("export_create", params)
        vol = self._get(params["volume"])
        export_id = f"e{len(self.exports) + 1}"
        exp: JsonObject = {
            "volume": vol["name"],
            "export_id": export_id,
            "protocol": params["protocol"],
            "node": vol["owner_node"],
            "state": "active",
        }
        if params["protocol"] == "nvmf":
            exp["nvmf"] = {
                "subnqn": f"nqn.2026-11.io.spdkvirt:vol:{vol['name']}",
                "listeners": [{"traddr": "127.0.0.1", "trsvcid": "4420"}],
            }
        else:
            exp["iscsi"] = {
                "target_name": f"iqn.2026-11.io.spdkvirt:{vol['name']}",
                "portals": [{"host": "127.0.0.1", "port": 3260}],
            }
        self.exports[(vol["name"], export_id)] = exp
        vol["exports"].append(export_id)
        return dict(exp)

    async def export_delete(self, params: Params) -> bool:
        self._record("export_delete", params)
        key = (params["volume"], params["export_id"])
        if key not in self.exports:
            raise NotFound.of("export", f"{key[0]}/{key[1]}")
        del self.exports[key]
        self.volumes[key[0]]["exports"].remove(key[1])
        return True

    async def device_set_state(self, params: Params) -> JsonObject:
        self._record("device_set_state", params)
        key = (params["node"], params["device_id"])
        if key not in self.devices:
            raise NotFound.of("device", f"{key[0]}/{key[1]}")
        self.devices[key]["state"] = params["state"]
        return {**self.devices[key], "legs": 0}

    # ReadSide

    async def volume_list(self, params: Params) -> list[JsonObject]:
        self._record("volume_list", params)
        return [dict(v) for v in self.volumes.values()]

    async def volume_get(self, params: Params) -> JsonObject:
        self._record("volume_get", params)
        return dict(self._get(params["name"]))

    async def export_list(self, params: Params) -> list[JsonObject]:
        self._record("export_list", params)
        return [e for (v, _), e in self.exports.items() if params.get("volume") in (None, v)]

    async def node_list(self, params: Params) -> list[JsonObject]:
        self._record("node_list", params)
        return [{"node_id": n, "address": "127.0.0.1", "state": "up", "alive": True, "devices": 1} for n in NODES]

    async def device_list(self, params: Params) -> list[JsonObject]:
        self._record("device_list", params)
        return [{**d, "legs": 0} for (n, _), d in self.devices.items() if params.get("node") in (None, n)]

    async def cluster_status(self, params: Params) -> JsonObject:
        self._record("cluster_status", params)
        states = [v["state"] for v in self.volumes.values()]
        return {
            "leader": {"holder": "n1", "token": 7},
            "nodes": {"up": len(NODES), "down": 0},
            "devices": {"available": len(self.devices)},
            "volumes": {s: states.count(s) for s in ("healthy", "degraded", "rebuilding", "failed")},
            "epoch": 1,
        }

    async def epoch_list(self, params: Params) -> list[JsonObject]:
        self._record("epoch_list", params)
        return [
            {
                "number": 1,
                "reason": "volume_created",
                "phase": "done",
                "affected_volumes": [],
                "affected_nodes": ["n1"],
                "acks": {"n1": "done"},
            }
        ][: params["limit"]]
