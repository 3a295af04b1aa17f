"""Comparing a live SPDK reply with a recorded one, by the reference transcripts' rules.

UUIDs are mapped (recorded -> actual, consistent in both directions, the nil UUID literal; UUIDs
inside strings and 32-hex NGUIDs count); of errors only the code counts; volatile values
(counters, ticks, rebuild progress, ephemeral ports) are compared by JSON type; objects must
have the same keys; lists are ordered except where SPDK's order means nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX32_RE = re.compile(r"[0-9a-fA-F]{32}")
NIL = "00000000-0000-0000-0000-000000000000"

VOLATILE_NUMBER_METHODS = {
    "bdev_get_iostat",
    "bdev_nvme_get_path_iostat",
    "bdev_nvme_get_transport_statistics",
    "nvmf_get_stats",
    "iscsi_get_stats",
    "thread_get_stats",
    "thread_get_pollers",
    "framework_get_reactors",
    "accel_get_stats",
    "bdev_get_histogram",
    "env_dpdk_get_mem_stats",
}
VOLATILE_KEYS = {"tick_rate", "ticks", "tsc_rate"}
VOLATILE_KEY_RE = re.compile(r"(_ticks$|_latency|^bytes_|^num_.*_ops$|pool_size$|pool_count$)")
VOLATILE_SUFFIXES = [("process", "progress", "blocks"), ("process", "progress", "percent"), ("peer_address", "trsvcid")]
UNORDERED: dict[str, list[tuple[str, ...]]] = {
    "rpc_get_methods": [()],
    "notify_get_types": [()],
    "notify_get_notifications": [()],
    "bdev_get_iostat": [("bdevs",)],
}

Path_ = tuple[Any, ...]


def dashed(h: str) -> str:
    h = h.lower()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class UuidMap:
    def __init__(self) -> None:
        self.fwd: dict[str, str] = {}
        self.rev: dict[str, str] = {}

    def clone(self) -> UuidMap:
        m = UuidMap()
        m.fwd, m.rev = dict(self.fwd), dict(self.rev)
        return m

    def adopt(self, other: UuidMap) -> None:
        self.fwd, self.rev = other.fwd, other.rev

    def bind(self, rec: str, act: str) -> str | None:
        rec, act = rec.lower(), act.lower()
        if NIL in (rec, act):
            return None if rec == act else f"uuid {rec} vs {act} (nil is literal)"
        if rec in self.fwd:
            return None if self.fwd[rec] == act else f"uuid {rec} was {self.fwd[rec]}, now {act}"
        if act in self.rev:
            return f"actual uuid {act} already stands for {self.rev[act]}, not {rec}"
        self.fwd[rec], self.rev[act] = act, rec
        return None

    def translate(self, rec: str) -> str:
        low = rec.lower()
        if low == NIL:
            return rec
        if low not in self.fwd:
            if low in self.rev:
                return rec
            self.fwd[low] = self.rev[low] = low
        out = self.fwd[low]
        return out.upper() if rec.isupper() else out


def translate(obj: Any, umap: UuidMap) -> Any:
    """Rewrite recorded UUIDs in a request to the actual ones."""
    if isinstance(obj, dict):
        return {k: translate(v, umap) for k, v in obj.items()}
    if isinstance(obj, list):
        return [translate(v, umap) for v in obj]
    if isinstance(obj, str):
        if HEX32_RE.fullmatch(obj):
            out = umap.translate(dashed(obj)).replace("-", "")
            return out.upper() if obj.isupper() else out.lower()
        return UUID_RE.sub(lambda m: umap.translate(m.group(0)), obj)
    return obj


def replace_strings(obj: Any, old: str, new: str) -> Any:
    if not old:
        return obj
    if isinstance(obj, dict):
        return {replace_strings(k, old, new): replace_strings(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [replace_strings(v, old, new) for v in obj]
    if isinstance(obj, str):
        return obj.replace(old, new)
    return obj


def json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return {str: "string", list: "list"}.get(type(v), "object")


def short(v: Any, n: int = 160) -> str:
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= n else s[: n - 3] + "..."


class Comparer:
    def __init__(self, method: str | None, umap: UuidMap) -> None:
        self.method = method
        self.umap = umap
        self.diffs: list[str] = []

    def diff(self, path: Path_, text: str) -> None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "."
        self.diffs.append(f"{where}: {text}")

    def volatile(self, path: Path_, value: Any) -> bool:
        keys = tuple(p for p in path if isinstance(p, str))
        if not keys:
            return False
        if keys[0] == "result" and self.method in VOLATILE_NUMBER_METHODS and json_type(value) == "number":
            return True
        if keys[-1] in VOLATILE_KEYS or VOLATILE_KEY_RE.search(keys[-1]):
            return True
        return any(keys[-len(s) :] == s for s in VOLATILE_SUFFIXES)

    def unordered(self, path: Path_) -> bool:
        keys = tuple(p for p in path if isinstance(p, str))
        return bool(keys) and keys[0] == "result" and keys[1:] in UNORDERED.get(self.method or "", [])

    def compare(self, rec: Any, act: Any, path: Path_ = ()) -> None:
        if not isinstance(rec, dict | list) and self.volatile(path, rec):
            if json_type(rec) != json_type(act):
                self.diff(path, f"type {json_type(rec)} != {json_type(act)}")
        elif isinstance(rec, dict) and isinstance(act, dict):
            self.compare_dicts(rec, act, path)
        elif isinstance(rec, list) and isinstance(act, list):
            self.compare_lists(rec, act, path)
        elif isinstance(rec, str) and isinstance(act, str):
            reason = self.compare_strings(rec, act)
            if reason:
                self.diff(path, reason)
        elif json_type(rec) != json_type(act) or rec != act:
            self.diff(path, f"{short(rec)} != {short(act)}")

    def compare_dicts(self, rec: dict[str, Any], act: dict[str, Any], path: Path_) -> None:
        if path == () and ("error" in rec or "error" in act):
            if ("error" in rec) != ("error" in act):
                self.diff(path, f"recorded {short(rec)} vs actual {short(act)}")
            elif rec["error"].get("code") != act["error"].get("code"):
                self.diff(
                    ("error",),
                    f"code {rec['error'].get('code')} != {act['error'].get('code')} ({act['error'].get('message')!r})",
                )
            return
        missing = [k for k in rec if k not in act]
        extra = [k for k in act if k not in rec]
        if missing:
            self.diff(path, f"missing keys {missing}")
        if extra:
            self.diff(path, f"extra keys {extra}")
        before = self.umap.clone()
        scalar_mismatch = False
        for k, value in rec.items():
            if k in act:
                n = len(self.diffs)
                self.compare(value, act[k], (*path, k))
                scalar_mismatch |= len(self.diffs) > n and not isinstance(value, dict | list)
        if scalar_mismatch:
            self.umap.adopt(before)

    def compare_lists(self, rec: list[Any], act: list[Any], path: Path_) -> None:
        if self.unordered(path):
            if self.method == "notify_get_notifications" and path == ("result",):
                rec_ids = sorted(e.get("id") for e in rec if isinstance(e, dict))
                act_ids = sorted(e.get("id") for e in act if isinstance(e, dict))
                if rec_ids != act_ids:
                    self.diff(path, f"ids {short(rec_ids)} != {short(act_ids)}")
                rec = [{k: v for k, v in e.items() if k != "id"} for e in rec]
                act = [{k: v for k, v in e.items() if k != "id"} for e in act]
            self.compare_unordered(rec, act, path)
            return
        if len(rec) != len(act):
            self.diff(path, f"length {len(rec)} != {len(act)}: {short(rec)} vs {short(act)}")
            return
        for i, (r, a) in enumerate(zip(rec, act, strict=True)):
            self.compare(r, a, (*path, i))

    def compare_unordered(self, rec: list[Any], act: list[Any], path: Path_) -> None:
        if len(rec) != len(act):
            self.diff(path, f"length {len(rec)} != {len(act)}")
        used: set[int] = set()
        unmatched = []
        for r in rec:
            for j, a in enumerate(act):
                if j in used:
                    continue
                trial = Comparer(self.method, self.umap.clone())
                trial.compare(r, a, (*path, "*"))
                if not trial.diffs:
                    self.umap.adopt(trial.umap)
                    used.add(j)
                    break
            else:
                unmatched.append(r)
        if unmatched:
            self.diff(path, f"recorded elements not found: {short(unmatched)}")
        extra = [a for j, a in enumerate(act) if j not in used]
        if extra:
            self.diff(path, f"unexpected elements: {short(extra)}")

    def compare_strings(self, rec: str, act: str) -> str | None:
        if HEX32_RE.fullmatch(rec) and HEX32_RE.fullmatch(act):
            if rec.isupper() != act.isupper():
                return f"{rec!r} vs {act!r} (hex case)"
            reason = self.umap.bind(dashed(rec), dashed(act))
            return f"{rec!r} vs {act!r}: {reason}" if reason else None
        if UUID_RE.split(rec) != UUID_RE.split(act):
            return f"{short(rec)} != {short(act)}"
        for r, a in zip(UUID_RE.findall(rec), UUID_RE.findall(act), strict=True):
            reason = self.umap.bind(r, a)
            if reason:
                return reason
        return None


def compare(method: str | None, rec: Any, act: Any, umap: UuidMap, commit: bool = False) -> list[str]:
    """Differences between recorded and actual; new UUID bindings kept if it matched (or commit)."""
    c = Comparer(method, umap.clone())
    c.compare(rec, act)
    if not c.diffs or commit:
        umap.adopt(c.umap)
    return c.diffs
