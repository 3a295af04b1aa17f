"""One controller process: campaigns through the master, serves the admin API while it leads."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field

from spdkvirt.api import ApiServer
from spdkvirt.api.methods import StoreReadSide
from spdkvirt.api.server import Dispatcher
from spdkvirt.api.service import StoreIdempotencyLog
from spdkvirt.controller.master import Master, MasterConfig
from spdkvirt.controller.service import VolumeService
from spdkvirt.model.epoch import Deadlines
from spdkvirt.store import Store, open_store


@dataclass(frozen=True)
class ControllerOptions:
    store: str
    name: str = f"controller:{os.getpid()}"
    lease_ttl: int = 2
    api_socket: str | None = None
    http: tuple[str, int] | None = None
    token_file: str | None = None
    cert: str | None = None
    key: str | None = None
    fence_timeout: float = 10.0
    require_fencing: bool = False
    deadlines: Deadlines = field(default_factory=Deadlines)


async def serve_controller(store: Store, opts: ControllerOptions) -> None:
    """Lead when elected and serve the API, until cancelled."""
    master = Master(
        store,
        MasterConfig(
            opts.name,
            lease_ttl=opts.lease_ttl,
            fence_timeout=opts.fence_timeout,
            require_fencing=opts.require_fencing,
            deadlines=opts.deadlines,
        ),
    )
    dispatcher = Dispatcher(VolumeService(master), StoreReadSide(store), idempotency=StoreIdempotencyLog(store))
    server = None
    if opts.api_socket or opts.http:
        server = ApiServer(dispatcher, unix_path=opts.api_socket, http=opts.http, token_file=opts.token_file,
                           cert=opts.cert, key=opts.key)  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        if server is not None:
            await stack.enter_async_context(server)
        await master.run()


async def run_controller(opts: ControllerOptions) -> None:
    store = await open_store(opts.store)
    try:
        await serve_controller(store, opts)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(store.close())
