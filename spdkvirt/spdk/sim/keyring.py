"""The keyring: named keys that live in files (keyring_file), used by NVMe-oF DH-HMAC-CHAP and TLS.

A key is referenced by name from other objects (an NVMe-oF host's `dhchap_key`, for example). Those
holders keep a reference: a key removed while still held stays listed as `removed` until the last
holder lets go, as in SPDK.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from .decode import decode
from .errors import RpcError, invalid_params
from .registry import rpc
from .target import Target

MODULE_FILE = "keyring_file"


class Key:
    """One key: its name, where its secret is, and how many references it has (the keyring's own
    reference counts as one while the key is registered)."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self.module = MODULE_FILE
        self.refcnt = 1
        self.removed = False
        self.probed = False

    def read(self) -> bytes:
        """The key material, read from its file now (the file may have changed since it was added)."""
        if self.removed:
            raise OSError(errno.ENOKEY, os.strerror(errno.ENOKEY))
        check_path(self.path)
        with open(self.path, "rb") as f:
            return f.read()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "module": self.module,
            "removed": self.removed,
            "probed": self.probed,
            "refcnt": self.refcnt,
        }
        if not self.removed:
            out["path"] = self.path
        return out


class KeyringState:
    def __init__(self) -> None:
        self.keys: dict[str, Key] = {}
        self.removed: list[Key] = []

    def get(self, name: str) -> Key | None:
        return self.keys.get(name)

    def hold(self, key: Key) -> Key:
        key.refcnt += 1
        return key

    def put(self, key: Key | None) -> None:
        if key is None:
            return
        key.refcnt -= 1
        if key.refcnt == 0 and key in self.removed:
            self.removed.remove(key)

    def remove(self, key: Key) -> None:
        key.removed = True
        del self.keys[key.name]
        self.removed.append(key)
        self.put(key)


def check_path(path: str) -> None:
    """keyring_file's checks on a key file; raises OSError with SPDK's errno."""
    if not path.startswith("/"):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))
    st = os.stat(path)
    if st.st_mode & 0o077:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))
    if st.st_uid != os.getuid():
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))


def _errno_reply(err: int) -> RpcError:
    return RpcError(-err, os.strerror(err))


def find_key(target: Target, name: str) -> Key | None:
    """spdk_keyring_get_key: a registered key by name (no reference taken)."""
    return target.state(KeyringState).get(name)


@rpc("keyring_file_add_key")
async def keyring_file_add_key(target: Target, params: Any) -> Any:
    spec = {"name": ("str", True), "path": ("str", True)}
    try:
        relaxed = {k: v for k, v in params.items() if k in spec} if isinstance(params, dict) else params
        p = decode(relaxed, spec, code=-32602)
    except RpcError:
        raise invalid_params(os.strerror(errno.EINVAL)) from None
    st = target.state(KeyringState)
    name: str = p["name"]
    colon = name.find(":")
    if colon > 0:
        raise _errno_reply(errno.EINVAL)
    if name in st.keys:
        raise _errno_reply(errno.EEXIST)
    try:
        check_path(p["path"])
    except OSError as e:
        raise _errno_reply(e.errno or errno.EIO) from None
    st.keys[name] = Key(name, p["path"])
    return True


@rpc("keyring_file_remove_key")
async def keyring_file_remove_key(target: Target, params: Any) -> Any:
    try:
        p = decode(params, {"name": ("str", True)}, code=-32602)
    except RpcError:
        raise invalid_params(os.strerror(errno.EINVAL)) from None
    st = target.state(KeyringState)
    key = st.get(p["name"])
    if key is None:
        raise _errno_reply(errno.ENOKEY)
    if key.module != MODULE_FILE:
        raise _errno_reply(errno.EINVAL)
    st.remove(key)
    return True


@rpc("keyring_get_keys")
async def keyring_get_keys(target: Target, params: Any) -> Any:
    st = target.state(KeyringState)
    return [k.to_json() for k in [*st.keys.values(), *st.removed]]
