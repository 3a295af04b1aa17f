"""spdkvirt-sim: start a simulated spdk_tgt. Accepts spdk_tgt's command line (-r SOCKET, and
-m, -s, --no-huge, --disable-cpumask-locks... accepted and ignored)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from .modules import load_all
from .server import Server
from .target import Target


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="spdkvirt-sim", description=__doc__)
    ap.add_argument("-r", "--rpc-socket", default="/var/tmp/spdk.sock", help="UNIX socket to serve RPC on")
    ap.add_argument(
        "--rpc-poll-ms",
        type=float,
        default=0.0,
        help="emulate SPDK's RPC poller: answer requests only every N ms (real SPDK: 4)",
    )
    # spdk_tgt options accepted for drop-in use, ignored
    for flag in (
        "-m",
        "--cpumask",
        "-s",
        "--mem-size",
        "-c",
        "--config",
        "--json",
        "-i",
        "--shm-id",
        "-p",
        "--main-core",
        "-L",
        "--logflag",
        "--iova-mode",
        "--base-virtaddr",
        "-n",
        "--mem-channels",
        "--wait-for-rpc-timeout",
    ):
        ap.add_argument(flag, action="append", help=argparse.SUPPRESS)
    for flag in (
        "--no-huge",
        "--disable-cpumask-locks",
        "--wait-for-rpc",
        "-u",
        "--no-pci",
        "--huge-unlink",
        "-e",
        "--silence-noticelog",
    ):
        ap.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return ap.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    load_all()
    target = Target(rpc_poll_ms=args.rpc_poll_ms)
    server = Server(target)
    path = args.rpc_socket
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    srv = await asyncio.start_unix_server(server.serve_connection, path=path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with srv:
        await stop.wait()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="spdkvirt-sim: %(levelname)s %(message)s"
    )
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
