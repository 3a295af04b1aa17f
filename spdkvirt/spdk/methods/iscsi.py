"""Typed wrappers: the iSCSI target (iscsi_*): portal, initiator and auth groups, target nodes.

Target names get the `iqn.2016-06.io.spdk:` prefix at creation; later calls need the full IQN.
LUNs do not claim their bdev. Most errors are -32602 (SpdkInvalid); deleting an unknown target
node is -2 (SpdkNotFound).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .base import JsonObject, Methods, obj, params

IQN_PREFIX = "iqn.2016-06.io.spdk:"


@dataclass(frozen=True, slots=True)
class Portal:
    host: str
    port: str

    def to_json(self) -> JsonObject:
        return {"host": self.host, "port": self.port}


@dataclass(frozen=True, slots=True)
class PgIgMap:
    pg_tag: int
    ig_tag: int

    def to_json(self) -> JsonObject:
        return {"pg_tag": self.pg_tag, "ig_tag": self.ig_tag}


@dataclass(frozen=True, slots=True)
class Lun:
    bdev_name: str
    lun_id: int | None = None

    def to_json(self) -> JsonObject:
        return params(bdev_name=self.bdev_name, lun_id=self.lun_id) or {}


@dataclass(frozen=True, slots=True)
class AuthSecret:
    """A CHAP secret; `muser`/`msecret` for mutual CHAP."""

    user: str
    secret: str
    muser: str | None = None
    msecret: str | None = None

    def to_json(self) -> JsonObject:
        return params(user=self.user, secret=self.secret, muser=self.muser, msecret=self.msecret) or {}


def _objs(values: Sequence[Any]) -> list[JsonObject]:
    return [obj(v) for v in values]


def target_iqn(name: str) -> str:
    """The full name SPDK gives a target node created with `name` (default node base)."""
    return name if name[:4].lower() in ("iqn.", "eui.", "naa.") else IQN_PREFIX + name


class IscsiMethods(Methods):
    # -- portal groups -----------------------------------------------------------------------------

    async def iscsi_create_portal_group(
        self,
        tag: int,
        portals: Sequence[Portal | Mapping[str, Any]],
        *,
        private: bool | None = None,
        wait: bool | None = None,
    ) -> bool:
        return await self._bool(
            "iscsi_create_portal_group", params(tag=tag, portals=_objs(portals), private=private, wait=wait)
        )

    async def iscsi_start_portal_group(self, tag: int) -> bool:
        return await self._bool("iscsi_start_portal_group", params(tag=tag))

    async def iscsi_delete_portal_group(self, tag: int) -> bool:
        return await self._bool("iscsi_delete_portal_group", params(tag=tag))

    async def iscsi_get_portal_groups(self) -> list[JsonObject]:
        return await self._objects("iscsi_get_portal_groups")

    # -- initiator groups --------------------------------------------------------------------------

    async def iscsi_create_initiator_group(self, tag: int, initiators: Sequence[str], netmasks: Sequence[str]) -> bool:
        return await self._bool(
            "iscsi_create_initiator_group",
            params(tag=tag, initiators=list(initiators), netmasks=list(netmasks)),
        )

    async def iscsi_initiator_group_add_initiators(
        self, tag: int, *, initiators: Sequence[str] | None = None, netmasks: Sequence[str] | None = None
    ) -> bool:
        return await self._bool(
            "iscsi_initiator_group_add_initiators",
            params(
                tag=tag,
                initiators=None if initiators is None else list(initiators),
                netmasks=None if netmasks is None else list(netmasks),
            ),
        )

    async def iscsi_initiator_group_remove_initiators(
        self, tag: int, *, initiators: Sequence[str] | None = None, netmasks: Sequence[str] | None = None
    ) -> bool:
        return await self._bool(
            "iscsi_initiator_group_remove_initiators",
            params(
                tag=tag,
                initiators=None if initiators is None else list(initiators),
                netmasks=None if netmasks is None else list(netmasks),
            ),
        )

    async def iscsi_delete_initiator_group(self, tag: int) -> bool:
        return await self._bool("iscsi_delete_initiator_group", params(tag=tag))

    async def iscsi_get_initiator_groups(self) -> list[JsonObject]:
        return await self._objects("iscsi_get_initiator_groups")

    # -- auth groups -------------------------------------------------------------------------------

    async def iscsi_create_auth_group(
        self, tag: int, secrets: Sequence[AuthSecret | Mapping[str, Any]] | None = None
    ) -> bool:
        return await self._bool(
            "iscsi_create_auth_group", params(tag=tag, secrets=None if secrets is None else _objs(secrets))
        )

    async def iscsi_delete_auth_group(self, tag: int) -> bool:
        return await self._bool("iscsi_delete_auth_group", params(tag=tag))

    async def iscsi_auth_group_add_secret(
        self, tag: int, user: str, secret: str, *, muser: str | None = None, msecret: str | None = None
    ) -> bool:
        return await self._bool(
            "iscsi_auth_group_add_secret",
            params(tag=tag, user=user, secret=secret, muser=muser, msecret=msecret),
        )

    async def iscsi_auth_group_remove_secret(self, tag: int, user: str) -> bool:
        return await self._bool("iscsi_auth_group_remove_secret", params(tag=tag, user=user))

    async def iscsi_get_auth_groups(self) -> list[JsonObject]:
        return await self._objects("iscsi_get_auth_groups")

    # -- target nodes ------------------------------------------------------------------------------

    async def iscsi_create_target_node(
        self,
        name: str,
        alias_name: str,
        luns: Sequence[Lun | Mapping[str, Any]],
        pg_ig_maps: Sequence[PgIgMap | Mapping[str, Any]],
        queue_depth: int,
        *,
        disable_chap: bool | None = None,
        require_chap: bool | None = None,
        mutual_chap: bool | None = None,
        chap_group: int | None = None,
        header_digest: bool | None = None,
        data_digest: bool | None = None,
    ) -> bool:
        """Create a target node; it is then known as `target_iqn(name)`."""
        return await self._bool(
            "iscsi_create_target_node",
            params(
                name=name,
                alias_name=alias_name,
                pg_ig_maps=_objs(pg_ig_maps),
                luns=_objs(luns),
                queue_depth=queue_depth,
                disable_chap=disable_chap,
                require_chap=require_chap,
                mutual_chap=mutual_chap,
                chap_group=chap_group,
                header_digest=header_digest,
                data_digest=data_digest,
            ),
        )

    async def iscsi_delete_target_node(self, name: str) -> bool:
        return await self._bool("iscsi_delete_target_node", params(name=name))

    async def iscsi_get_target_nodes(self) -> list[JsonObject]:
        return await self._objects("iscsi_get_target_nodes")

    async def iscsi_target_node_add_lun(self, name: str, bdev_name: str, *, lun_id: int | None = None) -> bool:
        return await self._bool("iscsi_target_node_add_lun", params(name=name, bdev_name=bdev_name, lun_id=lun_id))

    async def iscsi_target_node_add_pg_ig_maps(
        self, name: str, pg_ig_maps: Sequence[PgIgMap | Mapping[str, Any]]
    ) -> bool:
        return await self._bool("iscsi_target_node_add_pg_ig_maps", params(name=name, pg_ig_maps=_objs(pg_ig_maps)))

    async def iscsi_target_node_remove_pg_ig_maps(
        self, name: str, pg_ig_maps: Sequence[PgIgMap | Mapping[str, Any]]
    ) -> bool:
        return await self._bool("iscsi_target_node_remove_pg_ig_maps", params(name=name, pg_ig_maps=_objs(pg_ig_maps)))

    async def iscsi_target_node_set_auth(
        self,
        name: str,
        *,
        disable_chap: bool | None = None,
        require_chap: bool | None = None,
        mutual_chap: bool | None = None,
        chap_group: int | None = None,
    ) -> bool:
        return await self._bool(
            "iscsi_target_node_set_auth",
            params(
                name=name,
                disable_chap=disable_chap,
                require_chap=require_chap,
                mutual_chap=mutual_chap,
                chap_group=chap_group,
            ),
        )
