"""The admin API of spdkvirt: JSON-RPC 2.0 over a UNIX socket and over HTTP(S).

Methods and their schemas: ``schemas/api/`` (README there); dispatch: :mod:`spdkvirt.api.server`;
what the methods call: :mod:`spdkvirt.api.service`; client: :mod:`spdkvirt.api.client`.

A cluster started with ``spdkvirt up --workdir DIR`` serves the API on :func:`api_socket` of ``DIR``;
:class:`ApiServer` runs the listeners. Wiring it up::

    dispatcher = Dispatcher(service, StoreReadSide(store), idempotency=StoreIdempotencyLog(store))
    async with ApiServer(dispatcher, unix_path=api_socket(workdir)):
        ...

(``service`` implements :class:`~spdkvirt.api.service.Service`; add ``http=(host, port)``,
``token_file=`` and optionally ``cert=``/``key=`` for HTTP(S).)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from spdkvirt.api.auth import read_token_file
from spdkvirt.api.http import serve_http, server_tls
from spdkvirt.api.server import Connections, Dispatcher
from spdkvirt.api.unix import serve_unix

API_SOCKET = "api.sock"


def api_socket(workdir: str | os.PathLike[str]) -> Path:
    """The API socket of the cluster whose work directory is ``workdir``."""
    return Path(workdir) / API_SOCKET


class ApiServer:
    """The API's listeners: a UNIX socket and/or HTTP(S), all answering through one dispatcher.

    The token file (HTTP only) is checked before anything listens; :meth:`start` raises
    :class:`~spdkvirt.api.auth.TokenFileError` for an unsafe one.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        unix_path: str | os.PathLike[str] | None = None,
        http: tuple[str, int] | None = None,
        token_file: str | os.PathLike[str] | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
    ) -> None:
        if http is not None and token_file is None:
            raise ValueError("an HTTP listener needs a token file")
        if (cert is None) != (key is None):
            raise ValueError("TLS needs both a certificate and a key")
        self.dispatcher = dispatcher
        self.unix_path = Path(unix_path) if unix_path is not None else None
        self.http = http
        self.token_file = token_file
        self.cert = cert
        self.key = key
        self.servers: list[asyncio.Server] = []
        self.connections = Connections()

    async def start(self) -> None:
        token = read_token_file(self.token_file) if self.http is not None and self.token_file is not None else None
        tls = server_tls(Path(self.cert), Path(self.key)) if self.cert is not None and self.key is not None else None
        try:
            if self.unix_path is not None:
                self.servers.append(await serve_unix(self.dispatcher, self.unix_path, self.connections))
            if self.http is not None and token is not None:
                host, port = self.http
                self.servers.append(
                    await serve_http(self.dispatcher, host, port, token=token, tls=tls, connections=self.connections)
                )
        except BaseException:
            await self.close()
            raise

    @property
    def http_port(self) -> int | None:
        """The port the HTTP listener got (useful with port 0)."""
        if self.http is None or not self.servers:
            return None
        port: int = self.servers[-1].sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        servers, self.servers = self.servers, []
        for s in servers:
            s.close()
        await self.connections.close_all()
        for s in servers:
            with contextlib.suppress(Exception):
                await s.wait_closed()
        if self.unix_path is not None and servers:
            self.unix_path.unlink(missing_ok=True)

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["API_SOCKET", "ApiServer", "Dispatcher", "api_socket"]
