"""Store URLs: ``file:///path/to/dir`` (embedded, the default) or ``etcd://host:port[,host:port...]``.

``file:///dir?snapshot_bytes=N&history=N`` — log size that triggers a snapshot; revisions of change
history kept for watches.

``etcd://[user[:password]@]host:port[,host:port...][/namespace][?options]`` (``etcds://`` for TLS).
Options: ``tls=1``, ``cacert=PATH``, ``cert=PATH``, ``key=PATH``, ``server_name=NAME``,
``password_file=PATH``, ``timeout=SECONDS`` (per request), ``retry_timeout=SECONDS`` (failover budget).
Without a password in the URL, ``$SPDKVIRT_ETCD_PASSWORD`` is used when a user is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from spdkvirt.store.config import DEFAULT_HISTORY, DEFAULT_SNAPSHOT_BYTES, EtcdConfig, FileConfig

ENV_URL = "SPDKVIRT_STORE"
ENV_PASSWORD = "SPDKVIRT_ETCD_PASSWORD"
ETCD_DEFAULT_PORT = 2379


def default_url() -> str:
    """$SPDKVIRT_STORE, else a file store in /var/lib/spdkvirt (root) or ~/.local/state/spdkvirt."""
    env = os.environ.get(ENV_URL)
    if env:
        return env
    if os.geteuid() == 0:
        return "file:///var/lib/spdkvirt/store"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return f"file://{Path(state) / 'spdkvirt' / 'store'}"


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.pop(name, None)
    return values[-1] if values else None


def _endpoint(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"etcd endpoint {text!r} has no host")
    try:
        return host, int(port) if port else ETCD_DEFAULT_PORT
    except ValueError:
        raise ValueError(f"etcd endpoint {text!r}: bad port") from None


def parse_url(url: str) -> FileConfig | EtcdConfig:
    """Parse a store URL into the backend's configuration (ValueError when malformed)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    cfg: FileConfig | EtcdConfig
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{url}: a file store URL names a local directory: file:///path/to/dir")
        if not parts.path:
            raise ValueError(f"{url}: no directory")
        cfg = FileConfig(
            Path(unquote(parts.path)).absolute(),
            int(_one(query, "snapshot_bytes") or DEFAULT_SNAPSHOT_BYTES),
            int(_one(query, "history") or DEFAULT_HISTORY),
        )
    elif parts.scheme in ("etcd", "etcds"):
        netloc = parts.netloc
        user = password = None
        if "@" in netloc:
            cred, netloc = netloc.rsplit("@", 1)
            user, sep, pw = cred.partition(":")
            user = unquote(user)
            password = unquote(pw) if sep else None
        endpoints = tuple(_endpoint(e) for e in netloc.split(",") if e)
        if not endpoints:
            raise ValueError(f"{url}: no etcd endpoint")
        password_file = _one(query, "password_file")
        if user is not None and password is None:
            password = Path(password_file).read_text().strip() if password_file else os.environ.get(ENV_PASSWORD)
            if password is None:
                raise ValueError(f"{url}: user {user!r} has no password (URL, password_file= or ${ENV_PASSWORD})")
        tls = parts.scheme == "etcds" or (_one(query, "tls") or "0").lower() in ("1", "true", "yes")
        timeout = float(_one(query, "timeout") or 5.0)
        cfg = EtcdConfig(
            endpoints=endpoints,
            namespace=unquote(parts.path).rstrip("/"),
            user=user,
            password=password,
            tls=tls,
            ca_file=_one(query, "cacert"),
            cert_file=_one(query, "cert"),
            key_file=_one(query, "key"),
            server_name=_one(query, "server_name"),
            timeout=timeout,
            retry_timeout=float(_one(query, "retry_timeout") or max(15.0, 3 * timeout)),
        )
    else:
        raise ValueError(f"{url}: unknown store URL scheme (use file:///path/to/dir or etcd://host:port)")
    if query:
        raise ValueError(f"{url}: unknown option(s) {', '.join(sorted(query))}")
    return cfg
