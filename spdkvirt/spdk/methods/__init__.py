"""Typed wrappers for every SPDK RPC spdkvirt uses, with SPDK's exact method and parameter names.

`Spdk(client)` has them all; `SimFaults(client)` holds the simulator's fault-injection methods
(simulator only). Results are SPDK's plain JSON, checked for shape (`SpdkResultError` otherwise);
create calls return the name or uuid SPDK answers with. Calls issued concurrently (e.g. with
`asyncio.gather`) are pipelined on the client's connection.
"""

from __future__ import annotations

from .app import AppMethods
from .base import JsonObject, Methods, RpcCaller, params
from .bdev import BdevMethods
from .iscsi import IQN_PREFIX, AuthSecret, IscsiMethods, Lun, PgIgMap, Portal, target_iqn
from .lvol import LvolMethods
from .nvme import NvmeMethods
from .nvmf import DISCOVERY_NQN, ListenAddress, Namespace, NvmfMethods
from .raid import RaidMethods
from .sim import SimFaults


class Spdk(AppMethods, BdevMethods, LvolMethods, RaidMethods, NvmeMethods, NvmfMethods, IscsiMethods):
    """Every typed SPDK wrapper over one client: `await Spdk(client).bdev_get_bdevs()`."""


__all__ = [
    "DISCOVERY_NQN",
    "IQN_PREFIX",
    "AuthSecret",
    "JsonObject",
    "ListenAddress",
    "Lun",
    "Methods",
    "Namespace",
    "PgIgMap",
    "Portal",
    "RpcCaller",
    "SimFaults",
    "Spdk",
    "params",
    "target_iqn",
]
