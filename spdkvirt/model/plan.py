"""The node planner: what one node's SPDK must do so that it holds what the database wants.

``plan_node(view, observed)`` is pure: it compares the volumes, legs and exports that concern a
node (``view``) with what its SPDK holds (``observed``) and returns ordered, idempotent steps plus
findings for the master. Run the steps, observe again and plan again: a plan of a converged node is
empty. Safety rules kept here (each has a test):

- a leg joins a raid as a source only while the database says it is in sync; any other leg joins
  with ``bdev_raid_add_base_bdev`` and is rebuilt;
- a leg SPDK dropped from its raid is never put back by the node: it is reported (``leg_dropped``);
- the last in-sync member of a raid is never removed; the lvol of a detached copy is never deleted;
- a member that is neither in sync, nor the rebuild target, nor added by this node for a rebuild
  (a placeholder left by an interrupted degraded start) is removed: raid1 would read from it;
- an in-sync leg whose lvol is gone is reported, never re-created blank;
- a remote leg is exported only by the boot of its node that the incarnation belongs to, under an
  NQN and namespace identity unique to that incarnation, and the owner checks the identity.

SPDK has no degraded start: a raid1 is made from its in-sync legs plus placeholders (a rebuild
target, or a null bdev) that are removed again at once, before anything is exported or released.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spdkvirt.model import names
from spdkvirt.model.observed import BdevInfo, Observed, RaidInfo
from spdkvirt.model.records import Export, Leg, Node, Volume
from spdkvirt.model.steps import EXISTS, GONE, Finding, Plan, Stage, Step

LEG_ID = re.compile(r"^[0-9a-f]{12}\.[0-9]+$")
NULL_PREFIX = "vn-"
CONCAT_STRIP_KB = 64


@dataclass(frozen=True)
class Options:
    """Timers of remote legs (seconds) and the count of I/Os a hold may keep."""

    ctrlr_loss_timeout_sec: int = 2
    reconnect_delay_sec: int = 1
    fast_io_fail_timeout_sec: int = 1
    hold_count: int = 1_000_000_000


@dataclass(frozen=True)
class NodeView:
    """What the database wants of one node. ``held``: volumes whose host I/O must wait and whose
    long work is halted (an epoch is quiescing them); ``complete``: ``volumes`` holds every volume,
    so objects that no volume wants may be removed; ``added``: volume -> raid members this node
    added with ``bdev_raid_add_base_bdev`` (SPDK rebuilt them, whatever the leg's state says yet)."""

    node: Node
    nodes: Mapping[str, Node]
    volumes: Mapping[str, Volume]
    exports: Mapping[str, tuple[Export, ...]] = field(default_factory=dict)
    held: frozenset[str] = frozenset()
    complete: bool = True
    options: Options = Options()
    added: Mapping[str, frozenset[str]] = field(default_factory=dict)


def identity_of(volume: Volume, leg: Leg) -> str:
    return leg.identity or names.leg_identity(volume.uuid, leg.leg_id, leg.incarnation)


def _listen(address: str, port: int) -> dict[str, str]:
    return {"trtype": "TCP", "adrfam": "IPv6" if ":" in address else "IPv4", "traddr": address, "trsvcid": str(port)}


def _serial(uuid: str) -> str:
    return ("SV" + uuid.replace("-", "").upper())[:20]


class _Planner:
    def __init__(self, view: NodeView, obs: Observed) -> None:
        self.view = view
        self.obs = obs
        self.me = view.node.node_id
        self.steps: list[Step] = []
        self.findings: list[Finding] = []
        self.by_alias = obs.by_alias
        self.wanted_lvols: dict[str, set[str]] = {}
        self.wanted_nqns: set[str] = set()
        self.wanted_ctrls: set[str] = set()
        self.wanted_nulls: set[str] = set()
        self.creating: set[str] = set()  # bdev names this plan creates before it assembles
        self.wanted_targets: set[str] = set()
        self.wanted_luns: set[str] = set()
        self.wanted_tags: set[int] = set()
        self.portal_planned = False

    def add(self, stage: Stage, method: str, volume: str, why: str, done_if: str = "", **params: Any) -> None:
        flags = frozenset({done_if}) if done_if else frozenset()
        self.steps.append(Step(stage, method, params, volume, why, flags))

    def find(self, volume: str, kind: str, leg: str = "", detail: str = "") -> None:
        self.findings.append(Finding(volume, kind, leg, detail))

    def bdev(self, name: str) -> BdevInfo | None:
        return self.obs.find(name)

    # ---- legs on this node ----------------------------------------------------------------
    def legs(self) -> None:
        for v in self.view.volumes.values():
            for leg in v.legs:
                if leg.node == self.me:
                    self.leg(v, leg)
            for leg in v.detached:
                if leg.node == self.me:  # a copy kept until the volume has its redundancy back
                    self.wanted_lvols.setdefault(leg.lvstore, set()).add(leg.leg_id)

    def leg(self, v: Volume, leg: Leg) -> None:
        self.wanted_lvols.setdefault(leg.lvstore, set()).add(leg.leg_id)
        alias = names.lvol_alias(leg.lvstore, leg.leg_id)
        lvol = self.bdev(alias)
        if lvol is not None and lvol.num_blocks * lvol.block_size < v.size_mib << 20:
            self.add(Stage.CREATE, "bdev_lvol_resize", v.name, f"grow leg {leg.leg_id}", name=alias,
                     size_in_mib=v.size_mib)  # fmt: skip
        if lvol is None:
            if leg.lvstore not in self.obs.lvstores:
                self.find(v.name, "device_missing", leg.leg_id, f"lvstore {leg.lvstore} is not loaded")
                return
            if leg.state == "in_sync":
                self.find(v.name, "leg_lost", leg.leg_id, f"lvol {alias} is gone")
                return
            self.add(
                Stage.CREATE, "bdev_lvol_create", v.name, f"create leg {leg.leg_id}", EXISTS,
                lvol_name=leg.leg_id, size_in_mib=v.size_mib, lvs_name=leg.lvstore, thin_provision=v.thin,
            )  # fmt: skip
            self.creating.add(alias)
        if v.owner != self.me and leg.node_boot == self.view.node.boot_id:
            owner = self.view.nodes.get(v.owner)
            if owner is not None:
                self.leg_export(v, leg, alias, owner)

    def leg_export(self, v: Volume, leg: Leg, alias: str, owner: Node) -> None:
        nqn = names.leg_nqn(leg.leg_id, leg.incarnation)
        ident = identity_of(v, leg)
        self.wanted_nqns.add(nqn)
        self.subsystem(
            v.name, nqn, f"export leg {leg.leg_id}#{leg.incarnation} to {owner.node_id}",
            hosts=(names.node_nqn(owner.node_id),), allow_any_host=False,
            ns={"bdev_name": alias, "uuid": ident, "nguid": names.nguid(ident)}, ns_stage=Stage.WIRE,
        )  # fmt: skip

    def subsystem(
        self,
        volume: str,
        nqn: str,
        why: str,
        *,
        hosts: tuple[str, ...],
        allow_any_host: bool,
        ns: dict[str, str] | None,
        ns_stage: Stage,
        serial: str = "",
        ana: bool = False,
        dhchap: Mapping[str, str] | None = None,
    ) -> None:
        """An NVMe-oF subsystem with one namespace, a listener on this node and a host list."""
        sub = self.obs.subsystems.get(nqn)
        node = self.view.node
        if sub is None:
            extra: dict[str, Any] = {"ana_reporting": True} if ana else {}
            if serial:
                extra["serial_number"] = serial
            self.add(
                Stage.CREATE, "nvmf_create_subsystem", volume, why, EXISTS,
                nqn=nqn, allow_any_host=allow_any_host, **extra,
            )  # fmt: skip
        listener = (node.address, str(node.nvmf_port))
        if sub is None or listener not in sub.listeners:
            self.add(
                Stage.WIRE, "nvmf_subsystem_add_listener", volume, why, EXISTS,
                nqn=nqn, listen_address=_listen(node.address, node.nvmf_port),
            )  # fmt: skip
        have = set(sub.hosts) if sub is not None else set()
        keys = {f"dhchap_{k}": name for k, name in (dhchap or {}).items()}
        for h in hosts:
            if h not in have:
                self.add(Stage.WIRE, "nvmf_subsystem_add_host", volume, why, EXISTS, nqn=nqn, host=h, **keys)
        if sub is not None:
            for h in sorted(have - set(hosts)):
                self.add(Stage.WIRE, "nvmf_subsystem_remove_host", volume, why, GONE, nqn=nqn, host=h)
            if sub.allow_any_host != allow_any_host:
                self.add(Stage.WIRE, "nvmf_subsystem_allow_any_host", volume, why, nqn=nqn,
                         allow_any_host=allow_any_host)  # fmt: skip
        if ns is not None and (sub is None or not any(n.bdev == self._name(ns["bdev_name"]) for n in sub.namespaces)):
            self.add(ns_stage, "nvmf_subsystem_add_ns", volume, why, EXISTS, nqn=nqn, namespace=dict(ns, nsid=1))

    def _name(self, bdev: str) -> str:
        found = self.bdev(bdev)
        return found.name if found is not None else bdev

    # ---- volumes owned by this node -------------------------------------------------------
    def volumes(self) -> None:
        for v in self.view.volumes.values():
            if v.owner == self.me and v.state != "deleting":
                self.volume(v)

    def member_name(self, v: Volume, leg: Leg) -> str | None:
        """The bdev a leg is reached through on the owner (None: not reachable now)."""
        if leg.node == self.me:
            if leg.node_boot and leg.node_boot != self.view.node.boot_id:
                # written by an earlier boot of this node: unproven until the master renews it
                self.find(v.name, "leg_unproven", leg.leg_id, "leg of an earlier boot of this node")
                return None
            alias = names.lvol_alias(leg.lvstore, leg.leg_id)
            found = self.bdev(alias)
            if found is not None:
                return found.name
            return alias if alias in self.creating else None
        ctrl = names.remote_controller(leg.leg_id, leg.incarnation)
        self.wanted_ctrls.add(ctrl)
        bdev = self.obs.bdevs.get(names.remote_bdev(leg.leg_id, leg.incarnation))
        if ctrl not in self.obs.controllers:
            peer = self.view.nodes.get(leg.node)
            if peer is not None and peer.state == "up" and peer.boot_id == leg.node_boot:
                self.add(
                    Stage.ATTACH, "bdev_nvme_attach_controller", v.name, f"attach leg {leg.leg_id}", EXISTS,
                    name=ctrl, trtype="TCP", adrfam="IPv6" if ":" in peer.address else "IPv4",
                    traddr=peer.address, trsvcid=str(peer.nvmf_port), subnqn=names.leg_nqn(leg.leg_id, leg.incarnation),
                    hostnqn=names.node_nqn(self.me), ctrlr_loss_timeout_sec=self.view.options.ctrlr_loss_timeout_sec,
                    reconnect_delay_sec=self.view.options.reconnect_delay_sec,
                    fast_io_fail_timeout_sec=self.view.options.fast_io_fail_timeout_sec,
                )  # fmt: skip
            return None
        if bdev is None:
            return None
        if bdev.uuid.lower() != identity_of(v, leg).lower():
            self.find(v.name, "identity_mismatch", leg.leg_id, f"{bdev.name} has uuid {bdev.uuid}")
            self.wanted_ctrls.discard(ctrl)
            return None
        return bdev.name

    def volume(self, v: Volume) -> None:
        members = {leg.leg_id: self.member_name(v, leg) for leg in v.legs}
        raid_name = names.raid(v.name)
        raid = self.obs.raids.get(raid_name)
        if raid is not None and raid.state != "online":
            self.add(Stage.DISASSEMBLE, "bdev_raid_delete", v.name, f"raid is {raid.state}", GONE, name=raid_name)
            raid = None
        elif raid is not None and self.without_source(v, raid, members):
            self.add(Stage.DISASSEMBLE, "bdev_raid_delete", v.name, "no in-sync member left", GONE, name=raid_name)
            raid = None
        if raid is None:
            assembled = self.assemble(v, members)
        else:
            self.regroup(v, raid, members)
            assembled = True
        if assembled:
            self.hold_and_export(v, raid is None)
        else:
            # hosts keep their subsystem / target (without a namespace) while the volume cannot be served
            for e in self.view.exports.get(v.name, ()):
                if e.protocol == "iscsi":
                    self.wanted_targets.add(e.iscsi.get("target_name") or names.volume_iqn(v.name))
                    self.wanted_tags.add(int(e.iscsi.get("initiator_group", 0)))
                else:
                    self.wanted_nqns.add(e.subnqn or names.volume_nqn(v.name))

    def without_source(self, v: Volume, raid: RaidInfo, members: Mapping[str, str | None]) -> bool:
        """An online raid none of whose members holds the data while an in-sync leg is at hand:
        it serves nothing worth keeping; it is made again from the in-sync legs."""
        if v.state == "creating":
            return False
        configured = set(raid.configured())
        good = {members[x.leg_id] for x in v.legs if x.state == "in_sync" and members[x.leg_id] is not None}
        return bool(good) and not (configured & good)

    def assemble(self, v: Volume, members: Mapping[str, str | None]) -> bool:
        """Plan the raid of a volume that has none; False when it cannot be made now."""
        name = names.raid(v.name)
        if v.state == "creating" and all(leg.state == "new" for leg in v.legs):
            missing = [leg.leg_id for leg in v.legs if members[leg.leg_id] is None]
            if missing:
                self.find(v.name, "waiting_for_legs", detail=" ".join(missing))
                return False
            self.create_raid(v, [m for m in members.values() if m is not None])
            return True
        sources = [leg for leg in v.legs if leg.state == "in_sync" and members[leg.leg_id] is not None]
        for leg in v.legs:
            if leg.state == "in_sync" and members[leg.leg_id] is None:
                self.find(v.name, "leg_unreachable", leg.leg_id)
        if not sources:
            self.find(v.name, "no_source", detail="no in-sync leg is reachable")
            return False
        if v.raid_level == "concat":
            self.create_raid(v, [members[sources[0].leg_id] or ""])
            return True
        base = [members[leg.leg_id] or "" for leg in sources[: v.redundancy]]
        spares = [
            members[leg.leg_id] or ""
            for leg in v.legs
            if leg.state != "in_sync" and members[leg.leg_id] is not None and v.name not in self.view.held
        ]
        placeholders: list[str] = []
        first = self.bdev(base[0])
        while len(base) + len(placeholders) < max(2, v.redundancy):
            if spares:
                placeholders.append(spares.pop(0))
                continue
            null = f"{NULL_PREFIX}{v.name}-{len(placeholders)}"
            self.wanted_nulls.add(null)
            blocks, bs = (first.num_blocks, first.block_size) if first else (v.size_mib * 2048, 512)
            self.add(Stage.ATTACH, "bdev_null_create", v.name, "placeholder", EXISTS, name=null, num_blocks=blocks,
                     block_size=bs)  # fmt: skip
            placeholders.append(null)
        self.create_raid(v, base + placeholders)
        for p in placeholders:
            self.add(Stage.TRIM, "bdev_raid_remove_base_bdev", v.name, "degraded start", GONE, name=p)
            if p.startswith(NULL_PREFIX):
                self.add(Stage.GROW, "bdev_null_delete", v.name, "placeholder", GONE, name=p)
        del name
        return True

    def create_raid(self, v: Volume, bdevs: list[str]) -> None:
        extra: dict[str, Any] = {"strip_size_kb": CONCAT_STRIP_KB} if v.raid_level == "concat" else {}
        self.add(
            Stage.ASSEMBLE, "bdev_raid_create", v.name, "assemble", EXISTS,
            name=names.raid(v.name), raid_level=v.raid_level, base_bdevs=bdevs, **extra,
        )  # fmt: skip

    def regroup(self, v: Volume, raid: RaidInfo, members: Mapping[str, str | None]) -> None:
        """Fix the membership of an online raid: drop what the mapping no longer has, add rebuild
        targets one at a time, report in-sync legs SPDK dropped."""
        halted = v.name in self.view.held
        leg_of = {name: leg_id for leg_id, name in members.items() if name is not None}
        configured = raid.configured()
        in_sync = [n for n in configured if n != raid.rebuild_target]
        added = self.view.added.get(v.name, frozenset())
        drop: dict[str, str] = {}
        for n in configured:
            leg = v.leg(leg_of.get(n, ""))
            if leg is None:
                drop[n] = "not in the mapping"
            elif halted and leg.state != "in_sync" and n == raid.rebuild_target:
                drop[n] = "rebuild halted"
            elif not self.copy(v, leg, n, raid, added):
                drop[n] = "member that is no copy"
        keep_in_sync = [n for n in in_sync if n not in drop]
        for n, why in drop.items():
            if n in in_sync and not keep_in_sync:
                self.find(v.name, "refused_last_in_sync", detail=f"{n} is the last in-sync member of {raid.name}")
                self.keep(n)
                continue
            self.add(Stage.DISASSEMBLE, "bdev_raid_remove_base_bdev", v.name, why, GONE, name=n)
        adding = raid.rebuild_target is not None or halted
        for leg in v.legs:
            name = members[leg.leg_id]
            if name is not None and name in configured:
                continue
            if leg.state == "in_sync":
                self.find(v.name, "leg_dropped", leg.leg_id, "in-sync leg is not a member of the raid")
            elif name is not None and not adding:
                self.add(Stage.GROW, "bdev_raid_add_base_bdev", v.name, f"rebuild onto {leg.leg_id}", EXISTS,
                         raid_bdev=raid.name, base_bdev=name)  # fmt: skip
                adding = True

    @staticmethod
    def copy(v: Volume, leg: Leg, member: str, raid: RaidInfo, added: frozenset[str]) -> bool:
        """Whether a configured member holds (or is being given) the volume's data: SPDK reads
        from every member but the rebuild target, so one that joined as a placeholder of a
        degraded start that was cut short before its trim must go."""
        if leg.state == "in_sync" or member == raid.rebuild_target or member in added:
            return True
        return v.state == "creating" and leg.state == "new"

    def keep(self, member: str) -> None:
        """Keep what a raid member stands on (its controller or lvol), though no leg wants it."""
        if member.startswith(names.REMOTE_PREFIX) and member.endswith("n1"):
            self.wanted_ctrls.add(member[: -len("n1")])
        found = self.bdev(member)
        for alias in found.aliases if found is not None else ():
            lvs, sep, lvol = alias.partition("/")
            if sep:
                self.wanted_lvols.setdefault(lvs, set()).add(lvol)

    def hold_and_export(self, v: Volume, new_raid: bool) -> None:
        hold = names.hold(v.name)
        exists = hold in self.obs.bdevs and not new_raid
        if not exists:
            self.add(Stage.CREATE, "bdev_error_create", v.name, "hold layer", EXISTS, base_name=names.raid(v.name))
        held = self.obs.held
        want_held = v.name in self.view.held
        if want_held and (not exists or held is None or v.name not in held):
            self.add(Stage.HOLD, "bdev_error_inject_error", v.name, "hold host I/O", name=hold, io_type="all",
                     error_type="pending", num=self.view.options.hold_count)  # fmt: skip
        if not want_held and exists and (held is None or v.name in held):
            self.add(Stage.RELEASE, "bdev_error_resume_pending", v.name, "release host I/O", name=hold)
        for e in self.view.exports.get(v.name, ()):
            if e.protocol == "iscsi":
                self.iscsi_export(v, e, hold, exists)
                continue
            nqn = e.subnqn or names.volume_nqn(v.name)
            self.wanted_nqns.add(nqn)
            self.subsystem(
                v.name, nqn, f"export {e.export_id}", hosts=e.hosts, allow_any_host=e.allow_any_host,
                ns={"bdev_name": hold, "uuid": v.uuid, "nguid": names.nguid(v.uuid)}, ns_stage=Stage.SERVE,
                serial=_serial(v.uuid), ana=True, dhchap=e.dhchap,
            )  # fmt: skip

    def iscsi_export(self, v: Volume, e: Export, hold: str, hold_exists: bool) -> None:
        """An iSCSI target node with the volume as LUN 0, behind spdkvirt's portal group on this node,
        an initiator group of the export's own and, with CHAP, an auth group of the same tag. The
        LUN opens a passthru over the hold (``names.lun`` says why), never the hold itself."""
        lun = names.lun(v.name)
        self.wanted_luns.add(lun)
        if lun not in self.obs.bdevs or not hold_exists:
            # SPDK keeps the association, so the passthru also comes back by itself with its hold
            self.add(Stage.CREATE, "bdev_passthru_create", v.name, "iSCSI LUN over the hold", EXISTS,
                     base_bdev_name=hold, name=lun)  # fmt: skip
        spec = e.iscsi
        name = spec.get("target_name") or names.volume_iqn(v.name)
        tag = int(spec.get("initiator_group", 0))
        if not tag:
            self.find(v.name, "export_incomplete", detail=f"export {e.export_id} has no initiator group")
            return
        iscsi = self.obs.iscsi
        node = self.view.node
        self.wanted_targets.add(name)
        self.wanted_tags.add(tag)
        why = f"export {e.export_id}"
        if names.PORTAL_GROUP not in iscsi.portal_groups and not self.portal_planned:
            self.portal_planned = True
            self.add(Stage.CREATE, "iscsi_create_portal_group", "", "iSCSI portal", EXISTS, tag=names.PORTAL_GROUP,
                     portals=[{"host": node.address, "port": str(node.iscsi_port)}])  # fmt: skip
        initiators = list(spec.get("initiators") or ["ANY"])
        netmasks = list(spec.get("netmasks") or ["ANY"])
        have = iscsi.initiator_groups.get(tag)
        if have is None:
            self.add(Stage.CREATE, "iscsi_create_initiator_group", v.name, why, EXISTS, tag=tag,
                     initiators=initiators, netmasks=netmasks)  # fmt: skip
        else:
            more_i = [i for i in initiators if i not in have[0]]
            more_n = [n for n in netmasks if n not in have[1]]
            less_i = [i for i in have[0] if i not in initiators]
            less_n = [n for n in have[1] if n not in netmasks]
            for method, ini, nets in (("add", more_i, more_n), ("remove", less_i, less_n)):
                change: dict[str, Any] = {"tag": tag}
                if ini:
                    change["initiators"] = ini
                if nets:
                    change["netmasks"] = nets
                if len(change) > 1:
                    self.add(Stage.WIRE, f"iscsi_initiator_group_{method}_initiators", v.name, why, **change)
        chap = spec.get("chap")
        if chap and tag not in iscsi.auth_groups:
            secret = {"user": chap["user"], "secret": chap["secret"]}
            if chap.get("mutual_user"):
                secret.update(muser=chap["mutual_user"], msecret=chap["mutual_secret"])
            self.add(Stage.CREATE, "iscsi_create_auth_group", v.name, why, EXISTS, tag=tag, secrets=[secret])
        target = iscsi.targets.get(name)
        if target is not None and hold in target[0]:
            # made by an earlier version with the LUN on the hold itself: made again over the passthru
            self.add(Stage.UNEXPORT, "iscsi_delete_target_node", v.name, "LUN on the hold", GONE, name=name)
            target = None
        if target is None:
            auth: dict[str, Any] = {"disable_chap": not chap, "require_chap": bool(chap)}
            if chap:
                auth.update(mutual_chap=bool(chap.get("mutual_user")), chap_group=tag)
            maps = [{"pg_tag": names.PORTAL_GROUP, "ig_tag": tag}]
            self.add(Stage.SERVE, "iscsi_create_target_node", v.name, why, EXISTS, name=name, alias_name=v.name,
                     luns=[{"bdev_name": lun, "lun_id": 0}], pg_ig_maps=maps, queue_depth=64, **auth)  # fmt: skip
        elif lun not in target[0]:
            self.add(Stage.SERVE, "iscsi_target_node_add_lun", v.name, why, EXISTS, name=name, bdev_name=lun, lun_id=0)

    # ---- what nothing wants any more ------------------------------------------------------
    def collect(self) -> None:
        owned = {v.name for v in self.view.volumes.values() if v.owner == self.me and v.state != "deleting"}
        for nqn in self.obs.subsystems:
            if nqn.startswith(names.NQN_BASE + ":") and nqn not in self.wanted_nqns:
                self.add(Stage.UNEXPORT, "nvmf_delete_subsystem", "", "not wanted", GONE, nqn=nqn)
        for b in self.obs.bdevs.values():
            if names.volume_of_lun(b.name) is not None and b.name not in self.wanted_luns:
                # before the hold goes (with its base gone first, SPDK would keep the association)
                self.add(Stage.UNHOLD, "bdev_passthru_delete", "", "no iSCSI export here", GONE, name=b.name)
        for b in self.obs.bdevs.values():
            vol = names.volume_of_hold(b.name)
            if vol is not None and vol not in owned:
                self.add(Stage.UNHOLD, "bdev_error_delete", vol, "volume not here", GONE, name=b.name)
            if b.name.startswith(NULL_PREFIX) and b.name not in self.wanted_nulls:
                self.add(Stage.DETACH, "bdev_null_delete", "", "placeholder", GONE, name=b.name)
        for r in self.obs.raids:
            vol = names.volume_of_raid(r)
            if vol is not None and vol not in owned:
                self.add(Stage.DISASSEMBLE, "bdev_raid_delete", vol, "volume not here", GONE, name=r)
        for c in self.obs.controllers:
            if c.startswith(names.REMOTE_PREFIX) and c not in self.wanted_ctrls:
                self.add(Stage.DETACH, "bdev_nvme_detach_controller", "", "leg not wanted", GONE, name=c)
        iscsi = self.obs.iscsi
        for name in iscsi.targets:
            if name.startswith(names.IQN_BASE + ":") and name not in self.wanted_targets:
                self.add(Stage.UNEXPORT, "iscsi_delete_target_node", "", "not wanted", GONE, name=name)
        for tag in iscsi.initiator_groups:
            if tag > names.PORTAL_GROUP and tag not in self.wanted_tags:
                self.add(Stage.UNHOLD, "iscsi_delete_initiator_group", "", "not wanted", GONE, tag=tag)
        for tag in iscsi.auth_groups:
            if tag > names.PORTAL_GROUP and tag not in self.wanted_tags:
                self.add(Stage.UNHOLD, "iscsi_delete_auth_group", "", "not wanted", GONE, tag=tag)
        for lvs in self.obs.lvstores:
            if not lvs.startswith(names.LVSTORE_PREFIX):
                continue
            wanted = self.wanted_lvols.get(lvs, set())
            for alias in sorted(a for a in self.by_alias if a.startswith(lvs + "/")):
                lvol = alias[len(lvs) + 1 :]
                if LEG_ID.match(lvol) and lvol not in wanted:
                    self.add(Stage.DELETE, "bdev_lvol_delete", "", "leg of no volume", GONE, name=alias)

    def plan(self) -> Plan:
        self.legs()
        self.volumes()
        if self.view.complete:
            self.collect()
        return Plan(tuple(self.steps), tuple(self.findings))


def plan_node(view: NodeView, observed: Observed) -> Plan:
    """The steps that bring one node's SPDK to what ``view`` wants, and what it cannot fix."""
    return _Planner(view, observed).plan()
