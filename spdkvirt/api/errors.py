"""Errors of the admin API: JSON-RPC 2.0's own codes and the service codes, defined once here.

Every error the API answers with is an :class:`ApiError` carrying a code, a one-line message and a
``data`` object. The service raises the subclasses below; the dispatcher turns them into error
objects, and the client turns error objects back into the same subclasses (:func:`from_wire`).
The table is documented in ``schemas/api/README.md``.

====== ====================== =====================================================================
code   class                  meaning
====== ====================== =====================================================================
-32700 ParseError             the request is not JSON (or nests too deep)
-32600 InvalidRequest         JSON, but not a JSON-RPC 2.0 request
-32601 MethodNotFound         no such method
-32602 InvalidParams          params break the method's schema; ``data.path`` names the field
-32603 InternalError          a bug in the server (logged there; ``data.incident`` finds the log)
-32000 ServiceFailed          the cluster tried and failed (SPDK or a node agent refused)
-32001 Unavailable            the cluster cannot serve now (store unreachable, no leader); retry
-32002 NotLeader              this server does not lead; ``data.leader`` says who does, if known
-32003 OutcomeUnknown         a deadline passed or a connection broke mid-way; retry with the key
-32004 NotFound               no such volume, snapshot, export, node or device
-32005 AlreadyExists          the name is taken
-32006 InvalidState           the object is in a state that forbids this (a volume with exports...)
-32007 InsufficientCapacity   not enough nodes, devices or space for the placement asked
-32008 Refused                well-formed, but against a rule of the cluster (shrinking a volume)
-32009 IdempotencyConflict    the idempotency key was used before with other params
-32010 Busy                   another operation holds the object; retry later
====== ====================== =====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from spdkvirt.spdk import errors as spdk
from spdkvirt.store import errors as store
from spdkvirt.store.store import GuardFailed

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

#: the range JSON-RPC 2.0 leaves to the application for server errors
SERVER_ERROR_RANGE = range(-32099, -32000 + 1)


class ApiError(Exception):
    """An error answer of the API: ``code``, one-line ``message``, ``data`` object."""

    CODE: ClassVar[int] = -32000

    def __init__(self, code: int, message: str, data: Mapping[str, Any] | None = None) -> None:
        self.code = code
        self.message = message
        self.data: dict[str, Any] = dict(data or {})
        super().__init__(message)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-RPC error object."""
        return {"code": self.code, "message": self.message, "data": self.data}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r}, {self.data!r})"


class _Coded(ApiError):
    """An error whose code is fixed by its class: built from a message and data."""

    def __init__(self, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(self.CODE, message, data)


class ParseError(_Coded):
    CODE = PARSE_ERROR


class InvalidRequest(_Coded):
    CODE = INVALID_REQUEST


class MethodNotFound(_Coded):
    CODE = METHOD_NOT_FOUND


class InvalidParams(_Coded):
    """Params that break the schema (or a rule the schema cannot say): ``data.path`` and ``data.reason``."""

    CODE = INVALID_PARAMS

    @classmethod
    def at(cls, path: str, reason: str) -> InvalidParams:
        return cls(f"invalid params: {reason}", {"path": path, "reason": reason})


class InternalError(_Coded):
    CODE = INTERNAL_ERROR


class ServiceFailed(_Coded):
    CODE = -32000


class Unavailable(_Coded):
    CODE = -32001


class NotLeader(_Coded):
    CODE = -32002


class OutcomeUnknown(_Coded):
    CODE = -32003


class NotFound(_Coded):
    CODE = -32004

    @classmethod
    def of(cls, kind: str, name: str) -> NotFound:
        return cls(f"{kind} {name!r} not found", {"kind": kind, "name": name})


class AlreadyExists(_Coded):
    CODE = -32005

    @classmethod
    def of(cls, kind: str, name: str) -> AlreadyExists:
        return cls(f"{kind} {name!r} already exists", {"kind": kind, "name": name})


class InvalidState(_Coded):
    CODE = -32006


class InsufficientCapacity(_Coded):
    CODE = -32007


class Refused(_Coded):
    """A request the cluster will not carry out; ``data.path`` names the field that asks for it."""

    CODE = -32008

    @classmethod
    def at(cls, path: str, reason: str) -> Refused:
        return cls(reason, {"path": path, "reason": reason})


class IdempotencyConflict(_Coded):
    CODE = -32009


class Busy(_Coded):
    CODE = -32010


#: every error class with a fixed code, by code
BY_CODE: dict[int, type[_Coded]] = {
    cls.CODE: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        ServiceFailed,
        Unavailable,
        NotLeader,
        OutcomeUnknown,
        NotFound,
        AlreadyExists,
        InvalidState,
        InsufficientCapacity,
        Refused,
        IdempotencyConflict,
        Busy,
    )
}


def from_wire(code: int, message: str, data: Any) -> ApiError:
    """The exception for an error object received from a server (its class when the code is known)."""
    payload = data if isinstance(data, dict) else ({} if data is None else {"value": data})
    cls = BY_CODE.get(code)
    return cls(message, payload) if cls is not None else ApiError(code, message, payload)


def from_exception(exc: BaseException) -> ApiError | None:
    """The API error for an exception of the layers below (store, SPDK adapter), or None for a bug."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, store.OutcomeUnknown | spdk.SpdkTimeout | spdk.SpdkConnectionLost):
        return OutcomeUnknown(f"outcome unknown: {reason}", {"reason": reason})
    if isinstance(exc, TimeoutError):
        return OutcomeUnknown("the operation did not finish in time", {"reason": "timeout"})
    if isinstance(exc, store.StoreUnavailable | store.StoreClosed | spdk.SpdkConnectError):
        return Unavailable(f"unavailable: {reason}", {"reason": reason})
    if isinstance(exc, store.LeadershipLost | GuardFailed):
        return NotLeader(f"not the leader: {reason}", {"reason": reason})
    if isinstance(exc, store.Conflict):
        return Busy(f"changed concurrently, retry: {reason}", {"reason": reason})
    if isinstance(exc, spdk.SpdkRpcError):
        return ServiceFailed(f"SPDK refused: {reason}", {"reason": reason})
    return None
