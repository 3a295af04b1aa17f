"""Host key checking against known_hosts files, as OpenSSH's StrictHostKeyChecking=yes|accept-new does.

A host found with the key it presents is trusted; a host found with another key is refused
(`HostKeyChanged`); a host not found is refused (`UnknownHostKey`, naming the key type, its SHA256
fingerprint and how to opt in) unless `accept_new_host` is set, in which case its key is appended to
the first known_hosts file.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading

import paramiko

from .errors import HostKeyChanged, UnknownHostKey
from .options import ENV_ACCEPT_NEW_HOST

log = logging.getLogger(__name__)

_record_lock = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's `SHA256:...` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def record(path: str, name: str, key: paramiko.PKey) -> None:
    """Append `name keytype base64` to a known_hosts file (created 0600 in a 0700 directory if missing)."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    with _record_lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line)


class Policy(paramiko.MissingHostKeyPolicy):
    """What to do with a host no known_hosts file knows: refuse, or (opted in) record and accept."""

    def __init__(self, *, accept_new_host: bool, record_to: str) -> None:
        self.accept_new_host = accept_new_host
        self.record_to = record_to

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.accept_new_host:
            raise unknown_host(hostname, key, self.record_to)
        record(self.record_to, hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)
        log.warning(
            "ssh_host_key_accepted host=%s type=%s fingerprint=%s recorded_in=%s",
            hostname,
            key.get_name(),
            fingerprint(key),
            self.record_to,
        )


def unknown_host(hostname: str, key: paramiko.PKey, record_to: str) -> UnknownHostKey:
    fp = fingerprint(key)
    return UnknownHostKey(
        f"host {hostname} is not in known_hosts; it presents an {key.get_name()} key, fingerprint {fp}. "
        f"If that is the host's key, add it to {record_to} (e.g. ssh-keyscan, then compare the fingerprint), "
        f"or accept and record new hosts with --ssh-accept-new-host or {ENV_ACCEPT_NEW_HOST}=1",
        host=hostname,
        key_type=key.get_name(),
        fingerprint=fp,
    )


def changed_host(hostname: str, got: paramiko.PKey, expected: paramiko.PKey) -> HostKeyChanged:
    fp = fingerprint(got)
    return HostKeyChanged(
        f"HOST KEY CHANGED for {hostname}: it presents an {got.get_name()} key, fingerprint {fp}, "
        f"known_hosts has {expected.get_name()} {fingerprint(expected)}; refusing to connect. If the host "
        "was really reinstalled, remove its old line from known_hosts",
        host=hostname,
        key_type=got.get_name(),
        fingerprint=fp,
        expected=fingerprint(expected),
    )
