"""A volume's status as its owner sees it: raid state, in-sync legs, rebuild progress."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from spdkvirt.model import names
from spdkvirt.model.observed import Observed
from spdkvirt.model.records import Volume
from spdkvirt.model.steps import Finding

RAID_STATES = ("online", "configuring", "offline")


def leg_bdevs(volume: Volume, observed: Observed, me: str) -> dict[str, str]:
    """Bdev name -> leg id for the legs the owner can see."""
    out: dict[str, str] = {}
    for leg in volume.legs:
        if leg.node == me:
            b = observed.find(names.lvol_alias(leg.lvstore, leg.leg_id))
            if b is not None:
                out[b.name] = leg.leg_id
        else:
            out[names.remote_bdev(leg.leg_id, leg.incarnation)] = leg.leg_id
    return out


def volume_status(
    volume: Volume,
    observed: Observed,
    me: str,
    findings: Iterable[Finding],
    held: bool,
    generation: int,
    rebuilt: Collection[str] = (),
) -> dict[str, Any]:
    """The status record (without timestamp) of a volume owned by ``me``; ``generation``: the
    mapping generation last applied without error; ``rebuilt``: legs this node saw being rebuilt.

    A member counts as in sync only if the database says so, or the volume is being created with
    it, or the node watched its rebuild run: a member that just joined is never taken for a copy
    before its rebuild has shown up."""
    raid = observed.raids.get(names.raid(volume.name))
    served = {names.hold(volume.name), names.lun(volume.name)}
    by_bdev = leg_bdevs(volume, observed, me)
    in_sync: list[str] = []
    rebuild: dict[str, Any] | None = None
    if raid is not None:
        for m in raid.configured():
            leg = by_bdev.get(m)
            if leg is None:
                continue
            state = next((x.state for x in volume.legs if x.leg_id == leg), "")
            if m == raid.rebuild_target:
                rebuild = {"leg": leg, "percent": raid.rebuild_percent}
            elif state == "in_sync" or leg in rebuilt or (state == "new" and volume.state == "creating"):
                in_sync.append(leg)
    out: dict[str, Any] = {
        "kind": "status",
        "schema_version": 1,
        "volume": volume.name,
        "node": me,
        "generation": max(generation, 1),
        "raid_state": raid.state if raid is not None and raid.state in RAID_STATES else "absent",
        "in_sync": sorted(in_sync),
        "held": held,
        "exported": bool(served & observed.exported),
    }  # fmt: skip
    if rebuild is not None:
        out["rebuild"] = rebuild
    found = [f.json() for f in findings if f.volume == volume.name][:64]
    if found:
        out["findings"] = found
    return out
