"""Logged-in SSH connections, one per (user, host, port, options), shared by everything in a process.

Every SPDK client and remote command for the same login rides the same SSH connection (channels are
cheap, handshakes are not). A connection found dead is replaced on next use. Logging in blocks, so
async callers go through `connection()`, which does it on a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

import paramiko

from .errors import HostKeyError, SshAuthError, SshConnectError, SshError
from .hostkeys import Policy, changed_host
from .options import SshOptions
from .url import SshTarget

log = logging.getLogger(__name__)

KEEPALIVE_S = 15

PoolKey = tuple[str, str, int, SshOptions]


@dataclass(eq=False)
class SshConnection:
    """One logged-in SSH session."""

    key: PoolKey
    client: paramiko.SSHClient
    transport: paramiko.Transport

    @property
    def alive(self) -> bool:
        return self.transport.is_active()

    @property
    def login(self) -> str:
        user, host, port, _ = self.key
        return SshTarget(user, host, port).login

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self.client.close()


_pool: dict[PoolKey, SshConnection] = {}
_pool_lock = threading.Lock()
_login_locks: dict[PoolKey, threading.Lock] = {}


def pool_key(target: SshTarget, options: SshOptions) -> PoolKey:
    return (target.user, target.host, target.port, options)


def cached(target: SshTarget, options: SshOptions) -> SshConnection | None:
    """The live pooled connection for this login, if there is one (never blocks on a login)."""
    conn = _pool.get(pool_key(target, options))
    return conn if conn is not None and conn.alive else None


def get_connection(target: SshTarget, options: SshOptions) -> SshConnection:
    """The pooled connection for this login, logging in (blocking) when there is none alive."""
    key = pool_key(target, options)
    with _pool_lock:
        login_lock = _login_locks.setdefault(key, threading.Lock())
    with login_lock:
        conn = _pool.get(key)
        if conn is not None and conn.alive:
            return conn
        if conn is not None:
            log.info("ssh_reconnect login=%s reason=%s", conn.login, conn.transport.get_exception() or "closed")
            conn.close()
        conn = login(target, options)
        with _pool_lock:
            _pool[key] = conn
        return conn


async def connection(target: SshTarget, options: SshOptions) -> SshConnection:
    conn = cached(target, options)
    if conn is not None:
        return conn
    return await asyncio.to_thread(get_connection, target, options)


def drop(conn: SshConnection) -> None:
    """Close a connection and forget it (the next use logs in again)."""
    with _pool_lock:
        if _pool.get(conn.key) is conn:
            del _pool[conn.key]
    conn.close()


def close_connections() -> None:
    """Close every pooled SSH connection of this process."""
    with _pool_lock:
        conns = list(_pool.values())
        _pool.clear()
    for conn in conns:
        conn.close()


def login(target: SshTarget, options: SshOptions) -> SshConnection:
    """Connect, verify the host key and authenticate; typed SshError for each way that fails."""
    identities = options.identity_files
    for path in identities:
        if not os.path.isfile(path):
            raise SshAuthError(f"identity file {path} does not exist (logging in to {target.login})")
    known = options.known_hosts_files
    timeout = options.connect_timeout
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except OSError as exc:
        raise SshConnectError(f"cannot reach {target.login}: {exc}") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = paramiko.SSHClient()
    key_files: Any = list(identities) or None  # paramiko takes one path or a list of them
    try:
        for path in known:
            if os.path.isfile(path):
                client.load_system_host_keys(path)
        client.set_missing_host_key_policy(Policy(accept_new_host=options.accept_new_host, record_to=known[0]))
        client.connect(
            target.host,
            port=target.port,
            username=target.user,
            key_filename=key_files,
            look_for_keys=not identities,
            allow_agent=not identities,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            sock=sock,
        )
    except HostKeyError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise changed_host(target.host_key_name, exc.key, exc.expected_key) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        tried = ", ".join(identities) if identities else "~/.ssh keys and the agent"
        raise SshAuthError(f"{target.login}: authentication failed ({exc}); tried {tried}") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise SshConnectError(f"SSH to {target.login} failed: {exc or type(exc).__name__}") from exc
    except BaseException:
        client.close()
        raise
    transport = client.get_transport()
    if transport is None:  # pragma: no cover - connect() either sets it or raises
        client.close()
        raise SshError(f"SSH to {target.login}: no transport after login")
    transport.set_keepalive(KEEPALIVE_S)
    log.info("ssh_connected login=%s", target.login)
    return SshConnection(pool_key(target, options), client, transport)
