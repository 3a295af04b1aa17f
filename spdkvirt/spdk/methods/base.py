"""What every family of typed SPDK wrappers shares: the caller, the deadline, params and results.

Wrappers send SPDK's exact method and parameter names, leave optional params out when they are
None (and the params member out when nothing is left), and check the shape of what comes back.
"""

# ruff: noqa: ASYNC109 - `timeout` is the call deadline the client enforces (see client.py)

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, Self

from ..errors import SpdkResultError

JsonObject = dict[str, Any]


class RpcCaller(Protocol):
    """What the wrappers need from a client: `SpdkClient` is one."""

    timeout: float | None

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any: ...


class ToJson(Protocol):
    def to_json(self) -> JsonObject: ...


def params(**values: Any) -> JsonObject | None:
    """The params object with None values left out; None when nothing is left."""
    out = {k: v for k, v in values.items() if v is not None}
    return out or None


def obj(value: ToJson | Mapping[str, Any]) -> JsonObject:
    """A nested param object given as one of our value types or as a plain mapping."""
    if isinstance(value, Mapping):
        return dict(value)
    return value.to_json()


class Methods:
    """Base of the wrapper families: holds the caller and the deadline used for every call."""

    def __init__(self, rpc: RpcCaller, *, timeout: float | None = None) -> None:
        self._rpc = rpc
        self._timeout = timeout

    @property
    def rpc(self) -> RpcCaller:
        return self._rpc

    def with_timeout(self, timeout: float | None) -> Self:
        """The same wrappers with another per-call deadline (None: the client's default)."""
        return type(self)(self._rpc, timeout=timeout)

    async def _call(
        self, method: str, params: Mapping[str, Any] | None = None, *, at_least: float | None = None
    ) -> Any:
        """Call with this object's deadline, stretched to `at_least` seconds when SPDK itself waits."""
        timeout = self._timeout if self._timeout is not None else self._rpc.timeout
        if at_least is not None and timeout is not None and timeout < at_least:
            timeout = at_least
        return await self._rpc.call(method, params, timeout=timeout)

    async def _object(self, method: str, params: Mapping[str, Any] | None = None) -> JsonObject:
        return as_object(method, await self._call(method, params))

    async def _objects(self, method: str, params: Mapping[str, Any] | None = None) -> list[JsonObject]:
        return as_objects(method, await self._call(method, params))

    async def _bool(self, method: str, params: Mapping[str, Any] | None = None) -> bool:
        return as_bool(method, await self._call(method, params))

    async def _str(self, method: str, params: Mapping[str, Any] | None = None) -> str:
        return as_str(method, await self._call(method, params))

    async def _strs(self, method: str, params: Mapping[str, Any] | None = None) -> list[str]:
        return as_strs(method, await self._call(method, params))


def as_object(method: str, value: Any) -> JsonObject:
    if not isinstance(value, dict):
        raise SpdkResultError(method, "an object", value)
    return value


def as_list(method: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise SpdkResultError(method, "a list", value)
    return value


def _list_of(method: str, value: Any, item: type, what: str) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
        raise SpdkResultError(method, what, value)
    return value


def as_objects(method: str, value: Any) -> list[JsonObject]:
    return _list_of(method, value, dict, "a list of objects")


def as_bool(method: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpdkResultError(method, "true or false", value)
    return value


def as_int(method: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpdkResultError(method, "an integer", value)
    return value


def as_str(method: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SpdkResultError(method, "a string", value)
    return value


def as_strs(method: str, value: Any) -> list[str]:
    return _list_of(method, value, str, "a list of strings")
