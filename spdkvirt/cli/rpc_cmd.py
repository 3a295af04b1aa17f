"""``spdkvirt rpc (--node ID | --socket ADDR) <rpc.py command...>``: a raw SPDK RPC to one target.

The command line is parsed by the ``spdk`` package's own rpc.py parsers, so every rpc.py command
and option works as it does there. With ``--node`` the node's SPDK address comes from the cluster's
API; ``--socket`` names one directly: a path, tcp://host:port or ssh://user@host[:port]/path/to/spdk.sock
(with the --ssh-* options, or SPDKVIRT_SSH_* in the environment).
"""

from __future__ import annotations

import argparse
import sys

from spdkvirt.cli.api_cmds import add_global_options, target
from spdkvirt.cli.ssh_flags import add_ssh_flags, apply_ssh_flags


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rpc", help="send an SPDK rpc.py command to a node's target", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_global_options(p, suppress=True)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--node", help="node id (its SPDK address comes from the cluster's API)")
    where.add_argument("--socket", metavar="ADDR", help="SPDK address: path, tcp://host:port or ssh://user@host/path")
    add_ssh_flags(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="rpc.py command and its arguments")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spdkvirt.api.client import ApiError, ApiUnreachable
    from spdkvirt.spdk.rpcpy import RpcPyClient, RpcPyError, run_command
    from spdkvirt.spdk.transport import parse_address

    if not args.command:
        print("error: no rpc.py command given", file=sys.stderr)
        return 2
    try:
        apply_ssh_flags(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    address = args.socket
    if address is None:
        try:
            nodes = target(args).call("node_list", {})
        except (ApiError, ApiUnreachable, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        node = next((n for n in nodes if n["node_id"] == args.node), None)
        if node is None or not node.get("spdk"):
            print(f"error: node {args.node!r} is unknown or has not said where its SPDK is", file=sys.stderr)
            return 1
        address = node["spdk"]
    try:
        transport = parse_address(address)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        with RpcPyClient(transport) as client:
            try:
                run_command(client, args.command)
            except RpcPyError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
    finally:
        if "spdkvirt.ssh.connection" in sys.modules:
            from spdkvirt.ssh.connection import close_connections

            close_connections()
    return 0
