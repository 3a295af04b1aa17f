"""Typed wrappers: the NVMe bdev module as an NVMe-oF initiator (bdev_nvme_*)."""

from __future__ import annotations

from .base import JsonObject, Methods, params


class NvmeMethods(Methods):
    async def bdev_nvme_attach_controller(
        self,
        name: str,
        trtype: str,
        traddr: str,
        *,
        adrfam: str | None = None,
        trsvcid: str | None = None,
        subnqn: str | None = None,
        hostnqn: str | None = None,
        hostaddr: str | None = None,
        hostsvcid: str | None = None,
        multipath: str | None = None,
        num_io_queues: int | None = None,
        ctrlr_loss_timeout_sec: int | None = None,
        reconnect_delay_sec: int | None = None,
        fast_io_fail_timeout_sec: int | None = None,
        hdgst: bool | None = None,
        ddgst: bool | None = None,
        psk: str | None = None,
        dhchap_key: str | None = None,
        dhchap_ctrlr_key: str | None = None,
    ) -> list[str]:
        """Connect to a remote subsystem; returns the bdev names (`<name>n<nsid>`). The same name
        and path again is SpdkAlready."""
        return await self._strs(
            "bdev_nvme_attach_controller",
            params(
                name=name,
                trtype=trtype,
                traddr=traddr,
                adrfam=adrfam,
                trsvcid=trsvcid,
                subnqn=subnqn,
                hostnqn=hostnqn,
                hostaddr=hostaddr,
                hostsvcid=hostsvcid,
                multipath=multipath,
                num_io_queues=num_io_queues,
                ctrlr_loss_timeout_sec=ctrlr_loss_timeout_sec,
                reconnect_delay_sec=reconnect_delay_sec,
                fast_io_fail_timeout_sec=fast_io_fail_timeout_sec,
                hdgst=hdgst,
                ddgst=ddgst,
                psk=psk,
                dhchap_key=dhchap_key,
                dhchap_ctrlr_key=dhchap_ctrlr_key,
            ),
        )

    async def bdev_nvme_detach_controller(
        self,
        name: str,
        *,
        trtype: str | None = None,
        traddr: str | None = None,
        adrfam: str | None = None,
        trsvcid: str | None = None,
        subnqn: str | None = None,
        hostaddr: str | None = None,
        hostsvcid: str | None = None,
    ) -> bool:
        """Detach a controller (or only the path given) and its bdevs."""
        return await self._bool(
            "bdev_nvme_detach_controller",
            params(
                name=name,
                trtype=trtype,
                traddr=traddr,
                adrfam=adrfam,
                trsvcid=trsvcid,
                subnqn=subnqn,
                hostaddr=hostaddr,
                hostsvcid=hostsvcid,
            ),
        )

    async def bdev_nvme_get_controllers(self, name: str | None = None) -> list[JsonObject]:
        return await self._objects("bdev_nvme_get_controllers", params(name=name))
