"""Typed wrappers: the NVMe-oF target (nvmf_*): transports, subsystems, hosts, namespaces, listeners.

Most nvmf errors are -32602 "Invalid parameters" whatever went wrong (SpdkInvalid), a few -32603.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import JsonObject, Methods, as_int, obj, params

DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery"


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """`listen_address`: e.g. ListenAddress("TCP", "127.0.0.1", "4420", "IPv4")."""

    trtype: str
    traddr: str
    trsvcid: str | None = None
    adrfam: str | None = None

    def to_json(self) -> JsonObject:
        return params(trtype=self.trtype, adrfam=self.adrfam, traddr=self.traddr, trsvcid=self.trsvcid) or {}


@dataclass(frozen=True, slots=True)
class Namespace:
    """`namespace` of nvmf_subsystem_add_ns. Set `uuid`/`nguid` to keep a namespace's identity
    when its bdev is re-created (a remote attach takes the bdev uuid from them)."""

    bdev_name: str
    nsid: int | None = None
    uuid: str | None = None
    nguid: str | None = None
    eui64: str | None = None
    anagrpid: int | None = None
    ptpl_file: str | None = None
    no_auto_visible: bool | None = None

    def to_json(self) -> JsonObject:
        return (
            params(
                bdev_name=self.bdev_name,
                nsid=self.nsid,
                uuid=self.uuid,
                nguid=self.nguid,
                eui64=self.eui64,
                anagrpid=self.anagrpid,
                ptpl_file=self.ptpl_file,
                no_auto_visible=self.no_auto_visible,
            )
            or {}
        )


AddressLike = ListenAddress | Mapping[str, Any]


class NvmfMethods(Methods):
    async def nvmf_create_transport(
        self,
        trtype: str,
        *,
        tgt_name: str | None = None,
        max_queue_depth: int | None = None,
        max_io_qpairs_per_ctrlr: int | None = None,
        in_capsule_data_size: int | None = None,
        max_io_size: int | None = None,
        io_unit_size: int | None = None,
        max_aq_depth: int | None = None,
        num_shared_buffers: int | None = None,
        buf_cache_size: int | None = None,
        zcopy: bool | None = None,
        c2h_success: bool | None = None,
        dif_insert_or_strip: bool | None = None,
        sock_priority: int | None = None,
        abort_timeout_sec: int | None = None,
        ack_timeout: int | None = None,
    ) -> bool:
        return await self._bool(
            "nvmf_create_transport",
            params(
                trtype=trtype,
                tgt_name=tgt_name,
                max_queue_depth=max_queue_depth,
                max_io_qpairs_per_ctrlr=max_io_qpairs_per_ctrlr,
                in_capsule_data_size=in_capsule_data_size,
                max_io_size=max_io_size,
                io_unit_size=io_unit_size,
                max_aq_depth=max_aq_depth,
                num_shared_buffers=num_shared_buffers,
                buf_cache_size=buf_cache_size,
                zcopy=zcopy,
                c2h_success=c2h_success,
                dif_insert_or_strip=dif_insert_or_strip,
                sock_priority=sock_priority,
                abort_timeout_sec=abort_timeout_sec,
                ack_timeout=ack_timeout,
            ),
        )

    async def nvmf_get_transports(self, *, trtype: str | None = None, tgt_name: str | None = None) -> list[JsonObject]:
        return await self._objects("nvmf_get_transports", params(trtype=trtype, tgt_name=tgt_name))

    async def nvmf_create_subsystem(
        self,
        nqn: str,
        *,
        serial_number: str | None = None,
        model_number: str | None = None,
        allow_any_host: bool | None = None,
        ana_reporting: bool | None = None,
        max_namespaces: int | None = None,
        min_cntlid: int | None = None,
        max_cntlid: int | None = None,
        tgt_name: str | None = None,
    ) -> bool:
        return await self._bool(
            "nvmf_create_subsystem",
            params(
                nqn=nqn,
                tgt_name=tgt_name,
                serial_number=serial_number,
                model_number=model_number,
                max_namespaces=max_namespaces,
                allow_any_host=allow_any_host,
                ana_reporting=ana_reporting,
                min_cntlid=min_cntlid,
                max_cntlid=max_cntlid,
            ),
        )

    async def nvmf_delete_subsystem(self, nqn: str, *, tgt_name: str | None = None) -> bool:
        return await self._bool("nvmf_delete_subsystem", params(nqn=nqn, tgt_name=tgt_name))

    async def nvmf_get_subsystems(self, nqn: str | None = None, *, tgt_name: str | None = None) -> list[JsonObject]:
        """All subsystems (discovery first), or one: SpdkNotFound when missing."""
        return await self._objects("nvmf_get_subsystems", params(nqn=nqn, tgt_name=tgt_name))

    async def nvmf_subsystem_add_ns(
        self, nqn: str, namespace: Namespace | Mapping[str, Any], *, tgt_name: str | None = None
    ) -> int:
        """Export a bdev as a namespace; returns its nsid (the lowest free one when not given)."""
        method = "nvmf_subsystem_add_ns"
        result = await self._call(method, params(nqn=nqn, namespace=obj(namespace), tgt_name=tgt_name))
        return as_int(method, result)

    async def nvmf_subsystem_remove_ns(self, nqn: str, nsid: int, *, tgt_name: str | None = None) -> bool:
        return await self._bool("nvmf_subsystem_remove_ns", params(nqn=nqn, nsid=nsid, tgt_name=tgt_name))

    async def nvmf_subsystem_add_host(
        self,
        nqn: str,
        host: str,
        *,
        psk: str | None = None,
        dhchap_key: str | None = None,
        dhchap_ctrlr_key: str | None = None,
        tgt_name: str | None = None,
    ) -> bool:
        return await self._bool(
            "nvmf_subsystem_add_host",
            params(
                nqn=nqn,
                host=host,
                tgt_name=tgt_name,
                psk=psk,
                dhchap_key=dhchap_key,
                dhchap_ctrlr_key=dhchap_ctrlr_key,
            ),
        )

    async def nvmf_subsystem_remove_host(
        self, nqn: str, host: str, *, tgt_name: str | None = None, timeout_ms: int | None = None
    ) -> bool:
        return await self._bool(
            "nvmf_subsystem_remove_host", params(nqn=nqn, host=host, tgt_name=tgt_name, timeout_ms=timeout_ms)
        )

    async def nvmf_subsystem_allow_any_host(
        self, nqn: str, allow_any_host: bool, *, tgt_name: str | None = None
    ) -> bool:
        return await self._bool(
            "nvmf_subsystem_allow_any_host", params(nqn=nqn, allow_any_host=allow_any_host, tgt_name=tgt_name)
        )

    async def nvmf_subsystem_add_listener(
        self,
        nqn: str,
        listen_address: AddressLike,
        *,
        ana_state: str | None = None,
        secure_channel: bool | None = None,
        sock_impl: str | None = None,
        tgt_name: str | None = None,
    ) -> bool:
        return await self._bool(
            "nvmf_subsystem_add_listener",
            params(
                nqn=nqn,
                listen_address=obj(listen_address),
                tgt_name=tgt_name,
                secure_channel=secure_channel,
                ana_state=ana_state,
                sock_impl=sock_impl,
            ),
        )

    async def nvmf_subsystem_remove_listener(
        self, nqn: str, listen_address: AddressLike, *, tgt_name: str | None = None
    ) -> bool:
        return await self._bool(
            "nvmf_subsystem_remove_listener",
            params(nqn=nqn, listen_address=obj(listen_address), tgt_name=tgt_name),
        )

    async def nvmf_subsystem_listener_set_ana_state(
        self,
        nqn: str,
        listen_address: AddressLike,
        ana_state: str,
        *,
        anagrpid: int | None = None,
        tgt_name: str | None = None,
    ) -> bool:
        """ana_state: optimized, non_optimized, inaccessible; without `anagrpid` every group."""
        return await self._bool(
            "nvmf_subsystem_listener_set_ana_state",
            params(
                nqn=nqn,
                listen_address=obj(listen_address),
                ana_state=ana_state,
                anagrpid=anagrpid,
                tgt_name=tgt_name,
            ),
        )

    async def nvmf_subsystem_get_listeners(self, nqn: str, *, tgt_name: str | None = None) -> list[JsonObject]:
        return await self._objects("nvmf_subsystem_get_listeners", params(nqn=nqn, tgt_name=tgt_name))

    async def nvmf_subsystem_get_controllers(self, nqn: str, *, tgt_name: str | None = None) -> list[JsonObject]:
        return await self._objects("nvmf_subsystem_get_controllers", params(nqn=nqn, tgt_name=tgt_name))

    async def nvmf_subsystem_get_qpairs(self, nqn: str, *, tgt_name: str | None = None) -> list[JsonObject]:
        return await self._objects("nvmf_subsystem_get_qpairs", params(nqn=nqn, tgt_name=tgt_name))
