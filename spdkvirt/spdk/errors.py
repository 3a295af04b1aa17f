"""What an SPDK JSON-RPC call can end with, as exception types.

SpdkError
├── SpdkRpcError(code, message, data, method, params)   SPDK answered with an error object
│   ├── SpdkNotFound         -19 ENODEV, -2 ENOENT (or their text in an lvol/iSCSI message)
│   ├── SpdkExists           -17 EEXIST, "File exists"
│   ├── SpdkBusy             -1 EPERM (claimed), -16 EBUSY, -11 EAGAIN
│   ├── SpdkInvalid          -22 EINVAL, -21 EISDIR, -32602 invalid params, -32600
│   │   └── SpdkDecodeError  -32603 (bdev, lvol) / -32700 (raid): spdk_json_decode_object failed
│   ├── SpdkAlready          -114 EALREADY
│   ├── SpdkNoSpace          -28 ENOSPC
│   ├── SpdkTimedOut         -110 ETIMEDOUT: SPDK itself gave up waiting (an answer, not a lost call)
│   ├── SpdkIoError          -5 EIO
│   └── SpdkMethodNotFound   -32601
├── SpdkTransportError       the call did not complete on the wire
│   ├── SpdkConnectError     no connection: the request was never sent, safe to retry
│   ├── SpdkTimeout          the deadline passed after sending: outcome unknown
│   └── SpdkConnectionLost   the connection broke after sending: outcome unknown
│       └── SpdkProtocolError    the peer sent something that is not a JSON-RPC reply
└── SpdkResultError          SPDK answered, but the result has an unexpected shape

SPDK's error codes are module-specific, so the meaning of an error reply is looked up in one table,
`ERROR_TABLE`, by (method family, code, errno named by the message). Only the families that put an
errno's text into the message (lvol, iSCSI, NVMe-oF, and bdev's QoS) have their message consulted, and only to
recognise that text exactly; anything the table does not know stays a plain `SpdkRpcError` with its
code. Codes and messages are kept verbatim, and so is a deep copy of the params.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

# JSON-RPC codes SPDK uses.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class SpdkError(Exception):
    """Anything that went wrong talking to SPDK."""


class SpdkRpcError(SpdkError):
    """SPDK answered with an error object; `code`, `message` and `data` are SPDK's, verbatim."""

    def __init__(
        self,
        code: int,
        message: str,
        data: Any = None,
        method: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        params_copy = copy.deepcopy(dict(params)) if params is not None else None
        super().__init__(code, message, data, method, params_copy)
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        self.params = params_copy

    def __str__(self) -> str:
        where = f"{self.method}: " if self.method else ""
        return f"{where}{self.message} (code {self.code})"


class SpdkNotFound(SpdkRpcError):
    """The object named in the call does not exist."""


class SpdkExists(SpdkRpcError):
    """An object with that name or uuid already exists."""


class SpdkBusy(SpdkRpcError):
    """The object is claimed, in use, or in a state that refuses the call for now."""


class SpdkInvalid(SpdkRpcError):
    """SPDK refused the parameters."""


class SpdkDecodeError(SpdkInvalid):
    """The params did not decode: unknown or missing key, wrong type."""


class SpdkAlready(SpdkRpcError):
    """The operation is already done or in progress (EALREADY)."""


class SpdkNoSpace(SpdkRpcError):
    """Not enough space (ENOSPC)."""


class SpdkTimedOut(SpdkRpcError):
    """SPDK answered that it timed out waiting (ETIMEDOUT), e.g. bdev_get_bdevs with `timeout`."""


class SpdkIoError(SpdkRpcError):
    """An I/O error below the call (EIO)."""


class SpdkMethodNotFound(SpdkRpcError):
    """The target does not serve this method."""


class SpdkTransportError(SpdkError):
    """The call did not complete on the wire."""

    def __init__(self, message: str, method: str = "") -> None:
        super().__init__(message, method)
        self.message = message
        self.method = method

    def __str__(self) -> str:
        return f"{self.method}: {self.message}" if self.method else self.message


class SpdkConnectError(SpdkTransportError):
    """Could not connect; the request was never sent, so retrying is safe."""


class SpdkTimeout(SpdkTransportError):
    """The deadline passed after the request was sent: it may or may not have been executed."""


class SpdkConnectionLost(SpdkTransportError):
    """The connection broke after the request was sent: it may or may not have been executed."""


class SpdkProtocolError(SpdkConnectionLost):
    """The peer sent bytes that are not a JSON-RPC reply; the connection is abandoned."""


class SpdkResultError(SpdkError):
    """SPDK answered with a result of an unexpected shape."""

    def __init__(self, method: str, expected: str, result: Any) -> None:
        super().__init__(method, expected, result)
        self.method = method
        self.expected = expected
        self.result = result

    def __str__(self) -> str:
        return f"{self.method}: expected {self.expected}, got {self.result!r:.200}"


# Method families: the longest matching prefix wins.
FAMILY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("bdev_lvol_", "lvol"),
    ("bdev_raid_", "raid"),
    ("bdev_", "bdev"),
    ("nvmf_", "nvmf"),
    ("iscsi_", "iscsi"),
    ("notify_", "notify"),
    ("keyring_", "keyring"),
    ("framework_", "app"),
    ("rpc_", "app"),
    ("spdk_", "app"),
    ("sim_", "sim"),
)

# Families whose -32602/-32603 messages carry an errno's text ("No space left on device",
# "Failed to configure rate limit: Resource temporarily unavailable").
ERRNO_IN_MESSAGE = frozenset({"lvol", "iscsi", "nvmf", "bdev"})

# glibc's strerror text (what SPDK's spdk_strerror prints) -> errno name.
STRERROR: Mapping[str, str] = {
    "Operation not permitted": "EPERM",
    "No such file or directory": "ENOENT",
    "Input/output error": "EIO",
    "Resource temporarily unavailable": "EAGAIN",
    "Device or resource busy": "EBUSY",
    "File exists": "EEXIST",
    "No such device": "ENODEV",
    "Is a directory": "EISDIR",
    "Invalid argument": "EINVAL",
    "No space left on device": "ENOSPC",
    "Connection timed out": "ETIMEDOUT",
    "Operation already in progress": "EALREADY",
}

_ERRNO_TEXT = re.compile(
    "(?:^|[:,] )(" + "|".join(re.escape(text) for text in sorted(STRERROR, key=len, reverse=True)) + ")$"
)

ANY = "*"

# (family, code, errno named by the message or None) -> meaning.
# Lookup order: (family, code, errno), (ANY, code, errno), (family, code, None), (ANY, code, None).
ERROR_TABLE: Mapping[tuple[str, int, str | None], type[SpdkRpcError]] = {
    # JSON-RPC codes, every family
    (ANY, METHOD_NOT_FOUND, None): SpdkMethodNotFound,
    (ANY, INVALID_REQUEST, None): SpdkInvalid,
    (ANY, INVALID_PARAMS, None): SpdkInvalid,  # nvmf/iscsi "Invalid parameters", no-param methods
    (ANY, PARSE_ERROR, None): SpdkDecodeError,  # raid RPCs answer decode failures with -32700
    # bdev RPCs (malloc, null, aio, error, nvme, iostat, qos) and lvol: -32603 is a decode failure
    ("bdev", INTERNAL_ERROR, None): SpdkDecodeError,
    ("lvol", INTERNAL_ERROR, None): SpdkDecodeError,
    # negative errno in `code`: bdev, raid, lvol, nvme, and iscsi_delete_target_node (-2)
    (ANY, -1, None): SpdkBusy,  # EPERM: claimed by another module
    (ANY, -2, None): SpdkNotFound,  # ENOENT
    (ANY, -5, None): SpdkIoError,  # EIO
    (ANY, -11, None): SpdkBusy,  # EAGAIN
    (ANY, -16, None): SpdkBusy,  # EBUSY
    (ANY, -17, None): SpdkExists,  # EEXIST
    (ANY, -19, None): SpdkNotFound,  # ENODEV
    (ANY, -21, None): SpdkInvalid,  # EISDIR: bdev_aio_create of a directory
    (ANY, -22, None): SpdkInvalid,  # EINVAL
    (ANY, -28, None): SpdkNoSpace,  # ENOSPC
    (ANY, -110, None): SpdkTimedOut,  # ETIMEDOUT
    (ANY, -114, None): SpdkAlready,  # EALREADY
    # errno text in a -32602 message (lvol create/resize/rename/snapshot, iscsi auth groups, qos)
    (ANY, INVALID_PARAMS, "EPERM"): SpdkBusy,
    (ANY, INVALID_PARAMS, "ENOENT"): SpdkNotFound,
    (ANY, INVALID_PARAMS, "ENODEV"): SpdkNotFound,
    (ANY, INVALID_PARAMS, "EIO"): SpdkIoError,
    (ANY, INVALID_PARAMS, "EAGAIN"): SpdkBusy,
    (ANY, INVALID_PARAMS, "EBUSY"): SpdkBusy,
    (ANY, INVALID_PARAMS, "EEXIST"): SpdkExists,
    (ANY, INVALID_PARAMS, "ENOSPC"): SpdkNoSpace,
    (ANY, INVALID_PARAMS, "EINVAL"): SpdkInvalid,
    # errno text in a -32603 message (bdev_lvol_delete of a snapshot with several clones)
    (ANY, INTERNAL_ERROR, "EPERM"): SpdkBusy,
    (ANY, INTERNAL_ERROR, "ENOENT"): SpdkNotFound,
    (ANY, INTERNAL_ERROR, "ENODEV"): SpdkNotFound,
    (ANY, INTERNAL_ERROR, "EIO"): SpdkIoError,
    (ANY, INTERNAL_ERROR, "EBUSY"): SpdkBusy,
    (ANY, INTERNAL_ERROR, "EEXIST"): SpdkExists,
    (ANY, INTERNAL_ERROR, "ENOSPC"): SpdkNoSpace,
    (ANY, INTERNAL_ERROR, "EINVAL"): SpdkInvalid,
}


def method_family(method: str) -> str:
    """The family whose error conventions a method follows ("bdev", "lvol", "raid", "nvmf", ...)."""
    for prefix, family in FAMILY_PREFIXES:
        if method.startswith(prefix):
            return family
    return "other"


def errno_in_message(message: str) -> str | None:
    """The errno name whose strerror text ends the message ("..., File exists" -> "EEXIST")."""
    m = _ERRNO_TEXT.search(message)
    return STRERROR[m.group(1)] if m else None


def error_kind(method: str, code: int, message: str) -> type[SpdkRpcError]:
    """The exception type for SPDK's error reply to `method`."""
    family = method_family(method)
    err = errno_in_message(message) if family in ERRNO_IN_MESSAGE else None
    keys: list[tuple[str, int, str | None]] = []
    if err is not None:
        keys += [(family, code, err), (ANY, code, err)]
    keys += [(family, code, None), (ANY, code, None)]
    for key in keys:
        kind = ERROR_TABLE.get(key)
        if kind is not None:
            return kind
    return SpdkRpcError


def rpc_error(method: str, params: Mapping[str, Any] | None, error: Any) -> SpdkError:
    """The typed exception for a JSON-RPC error object received in reply to `method`."""
    if not isinstance(error, dict):
        return SpdkProtocolError(f"error member is not an object: {error!r:.200}", method)
    code = error.get("code")
    message = error.get("message", "")
    if isinstance(code, bool) or not isinstance(code, int) or not isinstance(message, str):
        return SpdkProtocolError(f"malformed error object: {error!r:.200}", method)
    kind = error_kind(method, code, message)
    return kind(code, message, error.get("data"), method, params)
