"""Errors the simulator answers with, exactly as SPDK encodes them on the wire."""

from __future__ import annotations

import errno
import os
from typing import Any

# JSON-RPC codes SPDK uses.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class RpcError(Exception):
    """An error reply: {"code": code, "message": message}."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


def errno_error(err: int) -> RpcError:
    """A bdev-style error: code -errno, message strerror (e.g. -19 "No such device")."""
    return RpcError(-err, os.strerror(err))


def errno_message(code: int, err: int) -> RpcError:
    """An lvol/nvmf-style error: a JSON-RPC code with strerror(err) as message."""
    return RpcError(code, os.strerror(err))


def decode_failed(code: int = INTERNAL_ERROR) -> RpcError:
    return RpcError(code, "spdk_json_decode_object failed")


def invalid_params(message: str = "Invalid parameters") -> RpcError:
    return RpcError(INVALID_PARAMS, message)


ENODEV = errno.ENODEV
ENOENT = errno.ENOENT
EEXIST = errno.EEXIST
EINVAL = errno.EINVAL
EPERM = errno.EPERM
EBUSY = errno.EBUSY
ENOMEM = errno.ENOMEM
ENOSPC = errno.ENOSPC
ETIMEDOUT = errno.ETIMEDOUT
EALREADY = errno.EALREADY
EIO = errno.EIO
EAGAIN = errno.EAGAIN
EISDIR = errno.EISDIR
EOPNOTSUPP = errno.EOPNOTSUPP
ENOTSUP = errno.ENOTSUP
EACCES = errno.EACCES
EROFS = errno.EROFS
