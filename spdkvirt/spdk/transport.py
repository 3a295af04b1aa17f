"""Where an SPDK RPC server is and how to open a byte stream to it.

A transport only opens connections (`open() -> (reader, writer)`); framing, ids and deadlines are
the client's. Addresses: a UNIX socket path (`/var/tmp/spdk.sock`, `unix:/path`, `unix:///path`) or
`tcp://host:port` (IPv6 as `tcp://[::1]:5260`) or `ssh://user@host[:port]/path/to/spdk.sock` (a UNIX
socket on another host, reached over SSH by `spdkvirt.ssh`, imported only when such an address is
parsed). Other schemes are added as another `Transport` and passed to the client as an object.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from spdkvirt.ssh.transport import SshTransport

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

DEFAULT_SOCKET = "/var/tmp/spdk.sock"


class Transport(Protocol):
    """Opens a fresh connection to one SPDK RPC server; raises OSError when it cannot."""

    async def open(self) -> Streams: ...


@dataclass(frozen=True, slots=True)
class UnixTransport:
    path: str

    async def open(self) -> Streams:
        return await asyncio.open_unix_connection(self.path)

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class TcpTransport:
    host: str
    port: int

    async def open(self) -> Streams:
        return await asyncio.open_connection(self.host, self.port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_address(address: str) -> UnixTransport | TcpTransport | SshTransport:
    """The transport for an address string; ValueError for what it cannot serve."""
    if not address:
        raise ValueError("empty SPDK address")
    if address[:6].lower() == "ssh://":
        from spdkvirt.ssh.transport import SshTransport  # paramiko only for ssh:// addresses

        return SshTransport.from_url(address)
    if address.startswith("unix:"):
        path = address.removeprefix("unix:")
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"no socket path in {address!r}")
        return UnixTransport(path)
    if "://" not in address:
        return UnixTransport(address)
    parts = urlsplit(address)
    if parts.scheme != "tcp":
        raise ValueError(f"unsupported SPDK address scheme {parts.scheme!r} in {address!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {address!r}") from exc
    if not parts.hostname or port is None:
        raise ValueError(f"expected tcp://host:port, got {address!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"expected tcp://host:port, got {address!r}")
    return TcpTransport(parts.hostname, port)
