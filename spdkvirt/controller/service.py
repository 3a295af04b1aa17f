"""The admin API's changes, carried out by the leading controller.

Each call checks the request against the master's view, then writes records guarded by its
leadership (a controller that does not lead answers NotLeader). Creating a volume places its
legs and waits, up to a deadline, until its owner reports it assembled: the agents do the SPDK
work, batched per node, all nodes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from spdkvirt.api.errors import AlreadyExists, InsufficientCapacity, InvalidState, NotFound, NotLeader, Refused
from spdkvirt.api.methods import device_view, export_view, volume_view
from spdkvirt.api.service import JsonObject, Params
from spdkvirt.controller.master import Master
from spdkvirt.controller.writes import Stale, delete_guarded, put_guarded
from spdkvirt.model import names
from spdkvirt.model.placement import Capacity, NoSpace
from spdkvirt.model.records import Node, Volume
from spdkvirt.model.remap import place_volume
from spdkvirt.store import Compare, Delete, Get, Put, keys

CREATE_WAIT = 10.0


class VolumeService:
    def __init__(self, master: Master, *, wait: float = CREATE_WAIT) -> None:
        self.master = master
        self.wait = wait
        self.lock = asyncio.Lock()

    def _lead(self) -> Master:
        if not self.master.leading.is_set() or self.master.mirror is None:
            raise NotLeader("this controller does not lead; try again or ask the leader")
        return self.master

    def _volume(self, name: str) -> Volume:
        m = self._lead()
        assert m.mirror is not None
        why = m.mirror.unparsed["volume"].get(keys.volume(name))
        if why is not None:
            raise InvalidState(f"the record of volume {name!r} cannot be read by this controller ({why}); "
                               "a newer version may have written it", {"kind": "volume", "name": name})  # fmt: skip
        v = m.volumes().get(name)
        if v is None:
            raise NotFound.of("volume", name)
        return v

    def _exports(self, volume: str) -> list[dict[str, Any]]:
        return [dict(e) for e in self.master.values("export") if e["volume"] == volume]

    async def _until(self, check: Callable[[], bool], within: float) -> bool:
        m = self._lead()
        assert m.mirror is not None
        end = time.monotonic() + within
        while not check():
            left = end - time.monotonic()
            if left <= 0:
                return False
            m.mirror.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.5)):
                    await m.mirror.changed.wait()
        return True

    def _view(self, name: str) -> JsonObject:
        m = self._lead()
        assert m.mirror is not None
        entry = m.mirror.get("volume", keys.volume(name))
        if entry is None:
            raise NotFound.of("volume", name)
        status = m.statuses().get(name)
        exports = [e["export_id"] for e in self._exports(name)]
        return volume_view(entry.record, exports, status, alive=m.cluster().alive)

    # ---- volumes ---------------------------------------------------------------------------
    async def volume_create(self, params: Params) -> JsonObject:
        m = self._lead()
        name = params["name"]
        async with self.lock:
            if name in m.volumes():
                raise AlreadyExists.of("volume", name)
            cluster = m.cluster()
            volumes = m.volumes().values()
            capacity = Capacity.of(cluster.devices.values(), volumes, cluster.usable_nodes())
            owned = Counter(v.owner for v in volumes)
            blank = Volume(name, str(uuidlib.uuid4()), params["size_bytes"], params["redundancy"], "", (),
                           thin=params["thin"])  # fmt: skip
            placement = params.get("placement") or {}
            try:
                v = place_volume(blank, cluster, capacity, owned, nodes=placement.get("nodes"),
                                 exclude=placement.get("exclude_nodes", ()))  # fmt: skip
            except NoSpace as e:
                raise InsufficientCapacity(str(e), {"needed": params["size_bytes"] * params["redundancy"]}) from e
            key = keys.volume(name)
            r = await m.store.txn([m.guard, Compare.absent(key)], [Put(key, v.record())], [Get(key)])
            if not r.succeeded:
                if r.results and r.results[0].kvs:
                    raise AlreadyExists.of("volume", name)
                raise NotLeader("leadership lost while creating the volume; try again")
        await self._until(lambda: self._state(name) not in ("creating", None), self.wait)
        return self._view(name)

    def _state(self, name: str) -> str | None:
        v = self.master.volumes().get(name)
        return v.state if v is not None else None

    async def volume_delete(self, params: Params) -> bool:
        m = self._lead()
        v = self._volume(params["name"])
        if self._exports(v.name):
            raise InvalidState(f"volume {v.name!r} has exports: delete them first", {"kind": "volume", "name": v.name})
        r = await m.store.txn([m.guard], [Delete(keys.volume(v.name)), Delete(keys.status(v.name))])
        if not r.succeeded:
            raise NotLeader("leadership lost")
        return True

    async def volume_resize(self, params: Params) -> JsonObject:
        m = self._lead()
        v = self._volume(params["name"])
        size = params["size_bytes"]
        if size < v.size_bytes:
            raise Refused.at("$.size_bytes", f"shrinking is refused: {v.name} has {v.size_bytes} bytes")
        if size > v.size_bytes:
            await self._rewrite(v.name, lambda cur: replace(cur, size_bytes=max(size, cur.size_bytes),
                                                            generation=cur.generation + 1))  # fmt: skip
            await self._until(lambda: (x := m.volumes().get(v.name)) is not None and x.size_bytes >= size, 2.0)
        return self._view(v.name)

    async def _rewrite(self, name: str, change: Callable[[Volume], Volume]) -> Volume:
        """Read the volume's record from the store, change it, write it back if nobody wrote it
        meanwhile (its revision), else read again: a change never undoes another (a remap, say)."""
        m = self._lead()
        key = keys.volume(name)
        for _ in range(20):
            kv = await m.store.get(key)
            if kv is None:
                raise NotFound.of("volume", name)
            nxt = change(Volume.of(kv.value))
            try:
                await put_guarded(m.store, m.guard, [nxt.record()], {key: kv.mod_revision})
            except Stale:
                await asyncio.sleep(0.02)
                continue
            return nxt
        raise InvalidState(f"volume {name!r} kept changing while being written; try again",
                           {"kind": "volume", "name": name})  # fmt: skip

    async def volume_snapshot(self, params: Params) -> JsonObject:
        self._volume(params["name"])
        raise Refused.at("$.name", "snapshots are not supported yet")

    async def volume_clone(self, params: Params) -> JsonObject:
        raise Refused.at("$.snapshot_name", "clones are not supported yet")

    # ---- exports ---------------------------------------------------------------------------
    async def export_create(self, params: Params) -> JsonObject:
        m = self._lead()
        v = self._volume(params["volume"])
        protocol = params["protocol"]
        others = [e for e in self._exports(v.name) if e["protocol"] != protocol]
        if others:
            path = "$.allow_second_protocol" if params.get("allow_second_protocol") else "$.protocol"
            raise Refused.at(path, f"volume {v.name!r} is already exported over {others[0]['protocol']}: SPDK serves "
                             "a volume over one protocol at a time (an NVMe-oF namespace claims the volume's bdev, "
                             "and an iSCSI LUN cannot then open it for writing); delete that export first")  # fmt: skip
        existing = [e for e in self._exports(v.name) if e["protocol"] == protocol]
        if params.get("dhchap") and (params.get("allow_any_host") or not params.get("hosts")):
            raise Refused.at("$.dhchap", "DH-HMAC-CHAP needs named hosts (hosts), not allow_any_host")
        export_id = existing[0]["export_id"] if existing else f"{protocol}0"
        owner = m.cluster().nodes.get(v.owner)
        if owner is None:
            raise InvalidState(f"owner {v.owner} of {v.name} is unknown", {"kind": "volume", "name": v.name})
        record: dict[str, Any] = {
            "kind": "export", "schema_version": 1, "volume": v.name, "export_id": export_id, "protocol": protocol,
            "node": v.owner, "state": "active", "generation": 1,
        }  # fmt: skip
        if protocol == "iscsi":
            record["iscsi"] = self._iscsi(v, owner, params, existing[0] if existing else None)
            await put_guarded(m.store, m.guard, [record])
            await self._until(lambda: bool((m.statuses().get(v.name) or {}).get("exported")), self.wait)
            return self._export_shown(record)
        record |= {
            "nvmf": {
                "subnqn": names.volume_nqn(v.name), "nsid": 1,
                "listeners": [{"trtype": "TCP", "adrfam": "IPv6" if ":" in owner.address else "IPv4",
                               "traddr": owner.address, "trsvcid": str(owner.nvmf_port)}],
                "allow_any_host": bool(params.get("allow_any_host", False)),
                "hosts": sorted(set(params.get("hosts", ()))),
            } | ({"dhchap": dict(params["dhchap"])} if params.get("dhchap") else {}),
        }  # fmt: skip
        await put_guarded(m.store, m.guard, [record])
        await self._until(lambda: bool((m.statuses().get(v.name) or {}).get("exported")), self.wait)
        return self._export_shown(record)

    def _export_shown(self, record: Mapping[str, Any]) -> JsonObject:
        """The export as the API shows it: ``active`` only once its owner reports it served."""
        m = self._lead()
        return export_view(record, m.statuses().get(record["volume"]), m.cluster().node_ok(record["node"]))

    def _iscsi(self, v: Volume, owner: Node, params: Params, old: Mapping[str, Any] | None) -> dict[str, Any]:
        """The iSCSI part of an export record: the volume's IQN, LUN 0, the node's portal and an
        initiator (and CHAP auth) group of the export's own, with a tag unique in the cluster."""
        if old is not None and "iscsi" in old:
            tag = int(old["iscsi"]["initiator_group"])
        else:
            used = [int(e["iscsi"]["initiator_group"]) for e in self.master.values("export") if "iscsi" in e]
            tag = max([names.PORTAL_GROUP, *used]) + 1
        out: dict[str, Any] = {
            "target_name": names.volume_iqn(v.name), "alias": v.name, "lun": 0, "portal_group": names.PORTAL_GROUP,
            "initiator_group": tag, "portals": [{"host": owner.address, "port": owner.iscsi_port}],
            "initiators": sorted(set(params.get("initiators") or ["ANY"])),
            "netmasks": sorted(set(params.get("netmasks") or ["ANY"])),
        }  # fmt: skip
        chap = params.get("chap")
        if chap:
            out["chap"] = {k: chap[k] for k in ("user", "secret", "mutual_user", "mutual_secret") if chap.get(k)}
        return out

    async def export_delete(self, params: Params) -> bool:
        m = self._lead()
        key = keys.export(params["volume"], params["export_id"])
        if await m.store.get(key) is None:
            raise NotFound.of("export", f"{params['volume']}/{params['export_id']}")
        await delete_guarded(m.store, m.guard, key)
        return True

    # ---- devices ---------------------------------------------------------------------------
    async def device_set_state(self, params: Params) -> JsonObject:
        m = self._lead()
        key = keys.device(params["node"], params["device_id"])
        assert m.mirror is not None
        entry = m.mirror.get("device", key)
        if entry is None:
            raise NotFound.of("device", f"{params['node']}/{params['device_id']}")
        dev = entry.value
        state = params["state"]
        if dev.state == "removed" and state != "removed":
            raise InvalidState("a removed device does not come back; register it as a new one",
                               {"kind": "device", "name": dev.device_id, "state": dev.state})  # fmt: skip
        record = dict(entry.record)
        if dev.state != state:
            record.update(state=state, generation=dev.generation + 1)
            if params.get("reason"):
                record["reason"] = params["reason"]
            try:
                await put_guarded(m.store, m.guard, [record], {key: entry.mod_revision})
            except Stale as e:
                raise InvalidState(f"device {dev.device_id} changed while being set {state} (its agent reported "
                                   "it); try again", {"kind": "device", "name": dev.device_id}) from e  # fmt: skip
        legs = sum(1 for v in m.volumes().values() for leg in v.legs if (leg.node, leg.device) == dev.key)
        return device_view(record, legs)
