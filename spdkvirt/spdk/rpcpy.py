"""SPDK's own rpc.py command parsers over spdkvirt's transports.

`RpcPyClient` implements `spdk.rpc.client.JSONRPCAbstractClient` on top of `SpdkClient`, so the
parsers in `spdk.cli` (what `rpc.py bdev_malloc_create 64 512` runs) work over a UNIX socket,
TCP, or any other `Transport`. Unlike SPDK's JSONRPCClient it keeps SPDK's error object (the
raised `RpcPyError` carries the typed `SpdkError`), counts wall-clock time, leaves the params
alone, matches replies by id and is safe to call from several threads: calls run on a private
event loop thread.

`run_command(client, argv)` parses and runs one rpc.py command line, printing what rpc.py prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import types
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from spdk import cli as spdk_cli
from spdk.rpc.client import JSONRPCAbstractClient, JSONRPCException

from .client import DEFAULT_TIMEOUT, SpdkClient
from .errors import SpdkError, SpdkRpcError
from .transport import Transport

T = TypeVar("T")


class RpcPyError(JSONRPCException):  # type: ignore[misc]
    """What rpc.py's command runners catch; `error` is the typed SpdkError behind it."""

    def __init__(self, error: SpdkError) -> None:
        self.error = error
        super().__init__(_message(error))

    def __str__(self) -> str:
        return str(self.message)


def _message(error: SpdkError) -> str:
    if isinstance(error, SpdkRpcError):
        request = dict(error.params or {})
        reply: dict[str, Any] = {"code": error.code, "message": error.message}
        if error.data is not None:
            reply["data"] = error.data
        return "\n".join(
            [
                "request:",
                json.dumps({"method": error.method, "params": request}, indent=2),
                "Got JSON-RPC error response",
                "response:",
                json.dumps(reply, indent=2),
            ]
        )
    return str(error)


class _LoopThread:
    """An event loop running in a daemon thread, for blocking callers."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class RpcPyClient(JSONRPCAbstractClient):  # type: ignore[misc]
    """A blocking JSON-RPC client with the interface rpc.py's command parsers expect.

    `client.bdev_get_bdevs(name="M0")` calls the method of that name (None values left out, as
    rpc.py does); `timeout` (seconds, wall-clock) may be changed at any time, as some parsers do.
    """

    def __init__(self, address: str | Transport, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._client = SpdkClient(address, timeout=timeout)
        self._runner: _LoopThread | None = _LoopThread(f"spdk-rpcpy {self._client.transport}")
        self._lock = threading.Lock()

    def __enter__(self) -> RpcPyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.run(self._client.close())
            runner.stop()

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        runner = self._runner
        if runner is None:
            raise RuntimeError("RpcPyClient is closed")
        # rpc.py sends no params member when there are none
        sent = dict(params) if params else None
        try:
            return runner.run(self._client.call(method, sent, timeout=self.timeout))
        except SpdkError as exc:
            raise RpcPyError(exc) from exc

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def rpc_method(**kwargs: Any) -> Any:
            return self.call(name, {k: v for k, v in kwargs.items() if v is not None})

        rpc_method.__name__ = name
        return rpc_method


def make_parser(prog: str = "rpc") -> argparse.ArgumentParser:
    """An argument parser with every rpc.py command of the installed `spdk` package."""
    parser = argparse.ArgumentParser(prog=prog, description="SPDK RPC commands (rpc.py syntax)")
    parser.add_argument(
        "-t", dest="timeout", type=float, default=None, help="seconds to wait for the reply (default 60)"
    )
    subparsers = parser.add_subparsers(dest="called_rpc_name", metavar="COMMAND", required=True)
    for module in vars(spdk_cli).values():
        if isinstance(module, types.ModuleType) and module.__name__.startswith("spdk.cli."):
            module.add_parser(subparsers)
    return parser


def run_command(client: RpcPyClient, argv: Sequence[str], parser: argparse.ArgumentParser | None = None) -> None:
    """Run one rpc.py command line (e.g. ["bdev_malloc_create", "-b", "M0", "8", "512"]).

    Output goes to stdout as rpc.py prints it; errors raise RpcPyError (SystemExit for bad usage).
    """
    parser = parser or make_parser()
    args = parser.parse_args(list(argv))
    saved = client.timeout
    if args.timeout is not None:
        client.timeout = args.timeout
    args.client = client
    try:
        args.func(args)
    finally:
        client.timeout = saved  # some parsers stretch it for their own call
