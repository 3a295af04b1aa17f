"""What the API commands print: aligned tables, JSON, a volume's detail and a progress bar."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from spdkvirt.cli.sizes import format_size

Column = tuple[str, Callable[[Mapping[str, Any]], Any]]


def print_json(value: Any, out: TextIO) -> None:
    json.dump(value, out, indent=2, sort_keys=True, ensure_ascii=False)
    out.write("\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "-"
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """Rows as a left-aligned table with a header line; ``(none)`` when there are no rows."""
    if not rows:
        return "(none)"
    grid = [[title for title, _ in columns]]
    grid += [[_cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in grid)


def field(name: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda row: row.get(name)


def size_field(name: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda row: format_size(row[name]) if isinstance(row.get(name), int) else None


def progress_bar(percent: float, width: int = 30) -> str:
    """``[#########.....]  42.0%``."""
    p = min(100.0, max(0.0, percent))
    filled = round(width * p / 100)
    return "[" + "#" * filled + "." * (width - filled) + f"] {p:5.1f}%"


VOLUME_COLUMNS: list[Column] = [
    ("NAME", field("name")),
    ("SIZE", size_field("size_bytes")),
    ("COPIES", field("redundancy")),
    ("STATE", lambda v: v["state"] + (f" {v['rebuild_percent']:.0f}%" if "rebuild_percent" in v else "")),
    ("OWNER", field("owner_node")),
    ("EXPORTS", field("exports")),
]
LEG_COLUMNS: list[Column] = [
    ("LEG", field("leg_id")),
    ("NODE", field("node")),
    ("DEVICE", field("device")),
    ("STATE", field("state")),
    ("LVOL", field("lvol_uuid")),
]
EXPORT_COLUMNS: list[Column] = [
    ("VOLUME", field("volume")),
    ("EXPORT", field("export_id")),
    ("PROTOCOL", field("protocol")),
    ("NODE", field("node")),
    ("STATE", field("state")),
    ("TARGET", lambda e: e.get("nvmf", {}).get("subnqn") or e.get("iscsi", {}).get("target_name")),
    (
        "ADDRESS",
        lambda e: (
            [f"{x['traddr']}:{x['trsvcid']}" for x in e.get("nvmf", {}).get("listeners", [])]
            + [f"{x['host']}:{x['port']}" for x in e.get("iscsi", {}).get("portals", [])]
        ),
    ),
]


def _fencing(node: Mapping[str, Any]) -> str:
    """How the node is fenced out of band, and how its last fencing went."""
    fence, status = node.get("fence"), node.get("fence_status")
    shown = fence["method"] if fence else "-"
    if status:
        shown += " (fenced)" if status.get("ok") else f" (FAILED: {status.get('detail', '')[:60]})"
    return shown


NODE_COLUMNS: list[Column] = [
    ("NODE", field("node_id")),
    ("ADDRESS", field("address")),
    ("STATE", field("state")),
    ("ALIVE", field("alive")),
    ("DEVICES", field("devices")),
    ("FENCING", _fencing),
]
DEVICE_COLUMNS: list[Column] = [
    ("NODE", field("node")),
    ("DEVICE", field("device_id")),
    ("BDEV", field("bdev")),
    ("STATE", field("state")),
    ("SIZE", size_field("size_bytes")),
    ("FREE", size_field("free_bytes")),
    ("LEGS", field("legs")),
]
EPOCH_COLUMNS: list[Column] = [
    ("EPOCH", field("number")),
    ("REASON", field("reason")),
    ("PHASE", field("phase")),
    ("VOLUMES", field("affected_volumes")),
    ("NODES", field("affected_nodes")),
    ("STARTED", field("started_at")),
]


def volume_detail(vol: Mapping[str, Any]) -> str:
    """One volume: its fields, a progress bar while it rebuilds, and its legs."""
    lines = [
        f"name:        {vol['name']}",
        f"uuid:        {vol['uuid']}",
        f"size:        {format_size(vol['size_bytes'])} ({vol['size_bytes']} bytes)",
        f"redundancy:  {vol['redundancy']} ({vol['raid_level']})",
        f"state:       {vol['state']}",
        f"owner:       {vol['owner_node']}",
        f"epoch:       {vol['epoch']}   generation: {vol['generation']}",
        f"exports:     {_cell(vol.get('exports'))}",
    ]
    if vol["state"] == "rebuilding":
        lines.append(f"rebuild:     {progress_bar(float(vol.get('rebuild_percent', 0.0)))}")
    lines += ["", table(vol.get("legs", []), LEG_COLUMNS)]
    if vol.get("detached"):
        lines += ["", "detached (kept until the volume has its redundancy back):", table(vol["detached"], LEG_COLUMNS)]
    return "\n".join(lines)


def _counts(by_state: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())) or "-"


def cluster_detail(status: Mapping[str, Any]) -> str:
    """The cluster summary."""
    leader = status.get("leader")
    return "\n".join(
        [
            f"leader:   {leader['holder'] if leader else '(none)'}"
            + (f" at {leader['address']}" if leader and leader.get("address") else ""),
            f"epoch:    {status.get('epoch', '-')}",
            f"nodes:    {_counts(status['nodes'])}",
            f"devices:  {_counts(status['devices'])}",
            f"volumes:  {_counts(status['volumes'])}",
        ]
    )
