"""Valid example records of every kind, for tests (override fields with keyword arguments)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any


def node(node_id: str = "n1", **kw: Any) -> dict[str, Any]:
    return {
        "kind": "node",
        "schema_version": 1,
        "node_id": node_id,
        "address": "127.0.0.1",
        "state": "up",
        "generation": 0,
    } | kw


def device(node_id: str = "n1", device_id: str = "d1", **kw: Any) -> dict[str, Any]:
    return {
        "kind": "device",
        "schema_version": 1,
        "node": node_id,
        "device_id": device_id,
        "bdev": f"{device_id}n1",
        "driver": "nvme",
        "size_bytes": 1 << 30,
        "block_size": 512,
        "state": "available",
        "generation": 1,
        "lvstore": {"name": f"lvs_{device_id}", "uuid": str(uuid.uuid4()), "cluster_size": 4 << 20},
    } | kw


def leg(leg_id: str, node_id: str, device_id: str, **kw: Any) -> dict[str, Any]:
    return {
        "leg_id": leg_id,
        "node": node_id,
        "device": device_id,
        "lvstore": f"lvs_{device_id}",
        "lvol_uuid": str(uuid.uuid4()),
        "incarnation": 1,
        "identity": str(uuid.uuid4()),
        "state": "in_sync",
    } | kw


def volume(name: str = "v1", **kw: Any) -> dict[str, Any]:
    return {
        "kind": "volume",
        "schema_version": 1,
        "name": name,
        "uuid": str(uuid.uuid4()),
        "size_bytes": 1 << 30,
        "redundancy": 2,
        "raid_level": "raid1",
        "owner_node": "n1",
        "legs": [leg("l0", "n1", "d1"), leg("l1", "n2", "d1")],
        "generation": 1,
        "epoch": 0,
        "state": "online",
    } | kw


def _export(
    volume_name: str, export_id: str, protocol: str, details: dict[str, Any], kw: dict[str, Any]
) -> dict[str, Any]:
    return {
        "kind": "export",
        "schema_version": 1,
        "volume": volume_name,
        "export_id": export_id,
        "protocol": protocol,
        "node": "n1",
        "state": "active",
        "generation": 1,
        protocol: details,
    } | kw


def export_nvmf(volume_name: str = "v1", export_id: str = "e1", **kw: Any) -> dict[str, Any]:
    nvmf = {
        "subnqn": f"nqn.2016-06.io.spdk:{volume_name}",
        "nsid": 1,
        "listeners": [{"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "4420"}],
        "allow_any_host": True,
    }
    return _export(volume_name, export_id, "nvmf", nvmf, kw)


def export_iscsi(volume_name: str = "v1", export_id: str = "e2", **kw: Any) -> dict[str, Any]:
    iscsi = {
        "target_name": f"iqn.2016-06.io.spdk:{volume_name}",
        "lun": 0,
        "portal_group": 1,
        "initiator_group": 1,
        "portals": [{"host": "127.0.0.1", "port": 3260}],
    }
    return _export(volume_name, export_id, "iscsi", iscsi, kw)


def epoch(number: int = 1, **kw: Any) -> dict[str, Any]:
    return {
        "kind": "epoch",
        "schema_version": 1,
        "number": number,
        "reason": "device_failed",
        "affected_volumes": ["v1"],
        "affected_nodes": ["n1", "n2"],
        "leader_token": 7,
        "phase": "quiescing",
        "acks": {"n1": "quiesced"},
    } | kw


def ack(epoch_number: int = 1, node_id: str = "n1", **kw: Any) -> dict[str, Any]:
    return {
        "kind": "ack",
        "schema_version": 1,
        "epoch": epoch_number,
        "node": node_id,
        "phase": "quiesced",
        "leader_token": 7,
        "status": "ok",
        "at": "2026-01-02T03:04:05.123Z",
    } | kw


def journal(op_id: str = "op1", **kw: Any) -> dict[str, Any]:
    return {
        "kind": "journal",
        "schema_version": 1,
        "op_id": op_id,
        "op": "remap_volume",
        "volume": "v1",
        "epoch": 1,
        "generation": 2,
        "leader_token": 7,
        "steps": [
            {"action": "create_lvol", "node": "n3", "params": {"size": 1}, "state": "done", "result": {"uuid": "x"}},
            {"action": "add_raid_leg", "node": "n1", "params": {}, "state": "pending"},
        ],
        "next": 1,
        "state": "running",
    } | kw


def leader(election: str = "master", lease: int = 0x1234, **kw: Any) -> dict[str, Any]:
    return {
        "kind": "leader",
        "schema_version": 1,
        "election": election,
        "holder": "n1/1",
        "lease": lease,
    } | kw


def alive(node_id: str = "n1", **kw: Any) -> dict[str, Any]:
    return {"kind": "alive", "schema_version": 1, "node": node_id, "boot_id": "b1"} | kw


def status(volume_name: str = "v1", **kw: Any) -> dict[str, Any]:
    return {
        "kind": "status",
        "schema_version": 1,
        "volume": volume_name,
        "node": "n1",
        "generation": 1,
        "raid_state": "online",
        "in_sync": ["l0", "l1"],
    } | kw


def idempotency(key: str = "k1", **kw: Any) -> dict[str, Any]:
    return {
        "kind": "idempotency",
        "schema_version": 1,
        "key": key,
        "method": "volume_create",
        "params_digest": "0" * 64,
        "result": {"name": "v1"},
    } | kw


EXAMPLES: dict[str, Callable[..., dict[str, Any]]] = {
    "node": node,
    "device": device,
    "volume": volume,
    "export": export_nvmf,
    "epoch": epoch,
    "ack": ack,
    "journal": journal,
    "leader": leader,
    "alive": alive,
    "status": status,
    "idempotency": idempotency,
}
