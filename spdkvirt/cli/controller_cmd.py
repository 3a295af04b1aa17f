"""``spdkvirt controller``: a controller process; the elected one is the master."""

from __future__ import annotations

import argparse
import os
import socket


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("controller", help="run a controller", description="Run a controller; one of them leads.")
    p.add_argument("--store", required=True, metavar="URL", help="file:///dir or etcd://host:port,...")
    p.add_argument("--name", default=f"{socket.gethostname()}:{os.getpid()}", help="this controller's name")
    p.add_argument("--lease-ttl", type=int, default=2)
    p.add_argument("--api-socket", metavar="PATH", help="serve the admin API on this UNIX socket while leading")
    p.add_argument("--http", metavar="HOST:PORT", help="also serve the admin API over HTTP(S)")
    p.add_argument("--token-file", metavar="F", help="bearer token for HTTP (owner-only file)")
    p.add_argument("--tls-cert", metavar="F")
    p.add_argument("--tls-key", metavar="F")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spdkvirt.cli.daemons import serve, setup_logging
    from spdkvirt.controller.process import ControllerOptions, run_controller

    setup_logging(args.verbose)
    http = None
    if args.http:
        host, _, port = args.http.rpartition(":")
        http = (host or "127.0.0.1", int(port))
    opts = ControllerOptions(
        store=args.store, name=args.name, lease_ttl=args.lease_ttl, api_socket=args.api_socket, http=http,
        token_file=args.token_file, cert=args.tls_cert, key=args.tls_key,
    )  # fmt: skip
    return serve(lambda: run_controller(opts))
