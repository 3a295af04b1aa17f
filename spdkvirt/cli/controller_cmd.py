"""``spdkvirt controller``: a controller process; the elected one is the master."""

from __future__ import annotations

import argparse
import os
import socket

from spdkvirt.cli.config_file import Option
from spdkvirt.cli.daemons import add_daemon_flags, serve, start_daemon

OPTIONS = (
    Option("store", "store", str, required=True),
    Option("name", "name", str, f"{socket.gethostname()}:{os.getpid()}"),
    Option("lease_ttl", "lease_ttl", int, 2),
    Option("api_socket", "api_socket", str),
    Option("http", "http", str),
    Option("token_file", "token_file", str),
    Option("tls_cert", "tls_cert", str),
    Option("tls_key", "tls_key", str),
    Option("fence_timeout", "fence_timeout", int, 10),
    Option("require_fencing", "require_fencing", bool, False),
    Option("quiesce_deadline", "quiesce_deadline", float, 2.0),
    Option("remap_deadline", "remap_deadline", float, 8.0),
    Option("resume_deadline", "resume_deadline", float, 5.0),
    Option("deadline_per_volume", "deadline_per_volume", float, 0.004),
    Option("hold_budget", "hold_budget", float, 20.0),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("controller", help="run a controller", description="Run a controller; one of them leads.")
    add_daemon_flags(p)
    p.add_argument("--store", metavar="URL", help="file:///dir or etcd://host:port,... (required)")
    p.add_argument("--name", help="this controller's name (host:pid)")
    p.add_argument("--lease-ttl", type=int, help="seconds of silence before another controller takes over (2)")
    p.add_argument("--api-socket", metavar="PATH", help="serve the admin API on this UNIX socket while leading")
    p.add_argument("--http", metavar="HOST:PORT", help="also serve the admin API over HTTP(S)")
    p.add_argument("--token-file", metavar="F", help="bearer token for HTTP (owner-only file)")
    p.add_argument("--tls-cert", metavar="F")
    p.add_argument("--tls-key", metavar="F")
    p.add_argument("--fence-timeout", type=int, metavar="S",
                   help="seconds one out-of-band fencing of a node may take (10)")  # fmt: skip
    p.add_argument("--require-fencing", action="store_true", default=None,
                   help="never move the volumes of a down node that has no out-of-band fence configured")  # fmt: skip
    p.add_argument("--quiesce-deadline", type=float, metavar="S",
                   help="seconds a node has to hold its volumes in an epoch (2), plus per volume")  # fmt: skip
    p.add_argument("--remap-deadline", type=float, metavar="S",
                   help="seconds a node has to apply an epoch's new mappings (8), plus per volume")  # fmt: skip
    p.add_argument("--resume-deadline", type=float, metavar="S",
                   help="seconds a node has to release its holds (5), plus per volume")  # fmt: skip
    p.add_argument("--deadline-per-volume", type=float, metavar="S",
                   help="seconds added to a node's deadline for each volume it answers for (0.004)")  # fmt: skip
    p.add_argument("--hold-budget", type=float, metavar="S",
                   help="most seconds host I/O stays held in one epoch (20; Linux fails I/O after 30)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spdkvirt.controller.process import ControllerOptions, run_controller
    from spdkvirt.model.epoch import Deadlines

    start_daemon(args, OPTIONS)
    http = None
    if args.http:
        host, _, port = args.http.rpartition(":")
        http = (host or "127.0.0.1", int(port))
    opts = ControllerOptions(
        store=args.store, name=args.name, lease_ttl=args.lease_ttl, api_socket=args.api_socket, http=http,
        token_file=args.token_file, cert=args.tls_cert, key=args.tls_key, fence_timeout=float(args.fence_timeout),
        require_fencing=args.require_fencing,
        deadlines=Deadlines(args.quiesce_deadline, args.remap_deadline, args.resume_deadline,
                            args.deadline_per_volume, args.hold_budget),
    )  # fmt: skip
    return serve(lambda: run_controller(opts))
