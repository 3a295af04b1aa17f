"""``spdkvirt up``: a whole cluster on this machine, in the foreground, until interrupted.

An embedded-store controller and N nodes, each with an SPDK simulator of its own (or a real SPDK
target, ``--spdk-socket``) and a node agent, all in one work directory. The admin API listens on
``DIR/api.sock``, so ``spdkvirt --workdir DIR <command>`` reaches it. SIGINT or SIGTERM stops it
cleanly; it signals only the simulators it started, and they end with it whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from spdkvirt.cli.sizes import SizeError, parse_size

LOG_FILE = "spdkvirt.log"


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except SizeError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def register(sub: Any) -> None:
    p = sub.add_parser(
        "up", help="run a local cluster in the foreground",
        description="Run a controller and N nodes on this machine until interrupted; "
        "the API is at DIR/api.sock (spdkvirt --workdir DIR ...).",
    )  # fmt: skip
    p.add_argument("--workdir", metavar="DIR", default=argparse.SUPPRESS, help="work directory of the cluster")
    p.add_argument("--nodes", type=int, default=3, help="storage nodes (default 3; with --spdk-socket: one per socket)")
    p.add_argument("--devices", type=int, default=2, help="device files per node (default 2)")
    p.add_argument("--device-size", type=_size, default=1 << 30, help="size of each device file (default 1GiB)")
    p.add_argument("--rpc-poll-ms", type=float, default=0.0, help="simulator RPC poller period (real SPDK: ~4)")
    p.add_argument(
        "--spdk-socket", action="append", default=[], metavar="PATH",
        help="drive the real SPDK target on this socket instead of a simulator (repeat: one per node)",
    )  # fmt: skip
    p.add_argument(
        "--spdk-tgt", metavar="COMMAND", default="",
        help="start a real spdk_tgt per node with this command instead of a simulator (e.g. "
        "'/opt/spdk/build/bin/spdk_tgt -m 0x1 --no-huge -s 1024 --disable-cpumask-locks'; -r SOCKET is added)",
    )  # fmt: skip
    p.add_argument("--address", default="127.0.0.1", help="address the nodes listen on (default 127.0.0.1)")
    p.add_argument("-v", "--verbose", action="store_true", help="log to stderr too, not only to DIR/spdkvirt.log")
    p.set_defaults(func=run)


def setup_logging(workdir: Path, verbose: bool) -> None:
    """Everything to ``DIR/spdkvirt.log``; warnings (everything with -v) to stderr."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    to_file = logging.FileHandler(workdir / LOG_FILE)
    to_file.setFormatter(fmt)
    to_err = logging.StreamHandler(sys.stderr)
    to_err.setFormatter(fmt)
    to_err.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.addHandler(to_file)
    root.addHandler(to_err)


def banner(workdir: Path, cluster: Any, out: TextIO) -> None:
    w = str(workdir)
    lines = [
        f"spdkvirt: {len(cluster.members)} node(s) up in {w}",
        f"  API:    unix://{cluster.api_socket.resolve()}",
        f"  store:  {cluster.store_url}",
        f"  log:    {workdir / LOG_FILE}",
    ]
    for n in cluster.members:
        spdk = "SPDK" if n.process is None or n.process.command else "simulator"
        lines.append(f"  node {n.node_id}: {spdk} at {n.socket}, NVMe/TCP {cluster.address}:{n.port}, "
                     f"devices {', '.join(d.device_id for d in n.devices) or '-'}")  # fmt: skip
    lines += [
        "try:",
        f"  spdkvirt --workdir {w} volume create v1 --size 64MiB --redundancy 2",
        f"  spdkvirt --workdir {w} volume list",
        "Ctrl-C stops the cluster.",
    ]
    print("\n".join(lines), file=out, flush=True)


async def serve(args: argparse.Namespace, workdir: Path, out: TextIO) -> None:
    from spdkvirt.local import LocalCluster

    cluster = LocalCluster(workdir, nodes=args.nodes, devices=args.devices, device_size=args.device_size,
                           poll_ms=args.rpc_poll_ms, sockets=args.spdk_socket, address=args.address,
                           target=shlex.split(args.spdk_tgt))  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with cluster:
        ready = asyncio.ensure_future(cluster.wait_ready(60.0))
        halt = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ready, halt}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            print("spdkvirt: stopping", file=out, flush=True)
            return
        halt.cancel()
        ready.result()
        banner(workdir, cluster, out)
        await stop.wait()
        print("spdkvirt: stopping", file=out, flush=True)


def run(args: argparse.Namespace) -> int:
    from spdkvirt.local import NotReady
    from spdkvirt.spdk.errors import SpdkError
    from spdkvirt.store import StoreError

    if not getattr(args, "workdir", None):
        print("error: up needs --workdir DIR", file=sys.stderr)
        return 2
    if args.nodes < 1 or args.devices < 1:
        print("error: --nodes and --devices must be at least 1", file=sys.stderr)
        return 2
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    setup_logging(workdir, args.verbose)
    try:
        asyncio.run(serve(args, workdir, sys.stdout))
    except (NotReady, SpdkError, StoreError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        print(f"see {workdir / LOG_FILE}", file=sys.stderr)
        return 1
    return 0
