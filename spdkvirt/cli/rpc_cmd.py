"""``spdkvirt rpc --node ID <rpc.py command...>``: a raw SPDK RPC to one node's target.

The command line is parsed by the ``spdk`` package's own rpc.py parsers, so every rpc.py command
and option works as it does there; the node's SPDK address comes from the cluster's API.
"""

from __future__ import annotations

import argparse
import sys

from spdkvirt.cli.api_cmds import add_global_options, target


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rpc", help="send an SPDK rpc.py command to a node's target", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_global_options(p, suppress=True)
    p.add_argument("--node", required=True, help="node id")
    p.add_argument("command", nargs=argparse.REMAINDER, help="rpc.py command and its arguments")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spdkvirt.api.client import ApiError, ApiUnreachable
    from spdkvirt.spdk.rpcpy import RpcPyClient, RpcPyError, run_command

    if not args.command:
        print("error: no rpc.py command given", file=sys.stderr)
        return 2
    try:
        nodes = target(args).call("node_list", {})
    except (ApiError, ApiUnreachable, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    node = next((n for n in nodes if n["node_id"] == args.node), None)
    if node is None or not node.get("spdk"):
        print(f"error: node {args.node!r} is unknown or has not said where its SPDK is", file=sys.stderr)
        return 1
    with RpcPyClient(node["spdk"]) as client:
        try:
            run_command(client, args.command)
        except RpcPyError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return 0
