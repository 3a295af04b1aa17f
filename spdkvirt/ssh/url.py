"""`ssh://user@host[:port]/abs/path/to/spdk.sock[?via=streamlocal|forced]`: where an SPDK socket is behind SSH.

`via` says how the remote UNIX socket is reached: `streamlocal` (a `direct-streamlocal@openssh.com`
channel), `forced` (a session running `socat STDIO UNIX-CONNECT:<path>`, which a forced-command key
replaces by its own command) or, when absent, `auto`: streamlocal, then forced if the server refuses
the streamlocal channel. The user defaults to the local user, the port to 22.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

Via = Literal["auto", "streamlocal", "forced"]
VIAS: tuple[Via, ...] = ("auto", "streamlocal", "forced")
SSH_PORT = 22


@dataclass(frozen=True, slots=True)
class SshTarget:
    """A host to log in to, and optionally the remote socket path and how to reach it."""

    user: str
    host: str
    port: int = SSH_PORT
    path: str = ""
    via: Via = "auto"

    @property
    def host_key_name(self) -> str:
        """How known_hosts names this server: `host`, or `[host]:port` off port 22."""
        return self.host if self.port == SSH_PORT else f"[{self.host}]:{self.port}"

    @property
    def login(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == SSH_PORT else f":{self.port}"
        return f"{self.user}@{host}{port}"

    def url(self) -> str:
        via = "" if self.via == "auto" else f"?via={self.via}"
        return f"ssh://{quote(self.user, safe='')}@{self.login.split('@', 1)[1]}{quote(self.path)}{via}"

    def __str__(self) -> str:
        return self.url()


def is_ssh_url(address: str) -> bool:
    return address[:6].lower() == "ssh://"


def parse_ssh_url(url: str, *, require_path: bool = True) -> SshTarget:
    """The target an ssh:// URL names; ValueError saying what is wrong with it."""
    if not is_ssh_url(url):
        raise ValueError(f"not an ssh:// URL: {url!r}")
    parts = urlsplit(url)
    if parts.password is not None:
        raise ValueError(f"passwords are not accepted in ssh:// URLs (use a key): {_redact(url)!r}")
    if parts.fragment:
        raise ValueError(f"unexpected fragment #{parts.fragment} in {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from None
    if port == 0:
        raise ValueError(f"bad port in {url!r}: 0")
    user = unquote(parts.username) if parts.username else getpass.getuser()
    if not user:
        raise ValueError(f"empty user in {url!r}")
    path = unquote(parts.path)
    if path in ("", "/"):
        if require_path:
            raise ValueError(f"no socket path in {url!r} (expected ssh://user@host[:port]/abs/path/to/spdk.sock)")
        path = ""
    if "\0" in path or "\n" in path:
        raise ValueError(f"socket path contains a control character in {url!r}")
    via: Via = "auto"
    if parts.query:
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ValueError(f"malformed query {parts.query!r} in {url!r}") from None
        unknown = sorted(set(query) - {"via"})
        if unknown:
            raise ValueError(f"unknown query parameter(s) {', '.join(unknown)} in {url!r} (only via= is known)")
        values = query["via"]
        if len(values) != 1 or values[0] not in VIAS:
            raise ValueError(f"via must be one of streamlocal, forced or auto in {url!r}, got {values!r}")
        via = values[0]
    return SshTarget(user=user, host=host, port=port or SSH_PORT, path=path, via=via)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return f"ssh://{parts.username or ''}:***@{netloc}{parts.path}"
