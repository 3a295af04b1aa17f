"""A cluster for the collection's module tests: ``python -m tests.ansible.modules_cluster WORKDIR``.

Three simulator-backed nodes (:class:`spdkvirt.local.LocalCluster`) whose leading controller serves the
admin API on ``WORKDIR/api.sock`` and over HTTP on loopback with a bearer token
(``WORKDIR/api.token``, mode 0600), plus a standby controller's API on ``WORKDIR/standby.sock``: it
reads the same store but does not lead, so every write there is answered NotLeader. When all is
ready it prints one line, ``ready {json}`` with the endpoints, and runs until SIGTERM or SIGINT. With a
self-signed certificate for 127.0.0.1 (``tests.api.test_http.make_cert``) the leader also serves HTTPS,
and ``https``/``ca`` are in the line.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path

from spdkvirt.api import ApiServer
from spdkvirt.api.methods import StoreReadSide
from spdkvirt.api.server import Dispatcher
from spdkvirt.api.service import StoreIdempotencyLog
from spdkvirt.controller.master import Master, MasterConfig
from spdkvirt.controller.service import VolumeService
from spdkvirt.local import LocalCluster
from tests.api.test_http import make_cert

NODES = 3
DEVICE_SIZE = 256 << 20


def write_token(path: Path) -> str:
    token = secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


async def main(workdir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cluster = LocalCluster(workdir, nodes=NODES, devices=2, device_size=DEVICE_SIZE)
    async with cluster:
        master = await cluster.wait_ready(60.0)
        assert cluster.store is not None
        token_file = workdir / "api.token"
        write_token(token_file)
        store = cluster.store
        leading = Dispatcher(VolumeService(master), StoreReadSide(store), idempotency=StoreIdempotencyLog(store))
        standby = Master(store, MasterConfig("standby"))
        idle = Dispatcher(VolumeService(standby), StoreReadSide(store), idempotency=StoreIdempotencyLog(store))
        async with AsyncExitStack() as servers:
            http = ApiServer(leading, http=("127.0.0.1", 0), token_file=token_file)
            await servers.enter_async_context(http)
            await servers.enter_async_context(ApiServer(idle, unix_path=workdir / "standby.sock"))
            ready = {
                "unix": str(cluster.api_socket.resolve()),
                "http": f"http://127.0.0.1:{http.http_port}",
                "token_file": str(token_file),
                "standby": str((workdir / "standby.sock").resolve()),
                "nodes": [n.node_id for n in cluster.members],
            }
            made = make_cert(workdir)
            if made is not None:
                cert, key = made
                https = ApiServer(leading, http=("127.0.0.1", 0), token_file=token_file, cert=cert, key=key)
                await servers.enter_async_context(https)
                ready |= {"https": f"https://127.0.0.1:{https.http_port}", "ca": str(cert)}
            print("ready " + json.dumps(ready), flush=True)
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
