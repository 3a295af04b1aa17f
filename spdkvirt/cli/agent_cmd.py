"""``spdkvirt agent``: the node agent (state manager) of one storage node."""

from __future__ import annotations

import argparse

from spdkvirt.cli.config_file import Option
from spdkvirt.cli.daemons import add_daemon_flags, serve, start_daemon
from spdkvirt.model.records import FENCE_METHODS

OPTIONS = (
    Option("node_id", "node_id", str, required=True),
    Option("spdk_socket", "spdk_socket", str, required=True),
    Option("store", "store", str, required=True),
    Option("address", "address", str, required=True),
    Option("nvmf_port", "nvmf_port", int, 4420),
    Option("iscsi_port", "iscsi_port", int, 3260),
    Option("devices", "device", list, [], flag="--device"),
    Option("lease_ttl", "lease_ttl", int, 2),
    Option("fence_url", "fence_url", str),
    Option("fence_method", "fence_method", str, "listeners", choices=FENCE_METHODS),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="run a node agent", description="Run the node agent of one storage node.")
    add_daemon_flags(p)
    p.add_argument("--node-id", help="this node's id (required)")
    p.add_argument("--spdk-socket", help="SPDK's JSON-RPC socket: a path, tcp://host:port or ssh://user@host/path")
    p.add_argument("--store", metavar="URL", help="file:///dir or etcd://host:port,... (required)")
    p.add_argument("--address", help="address other nodes and hosts reach this node at (required)")
    p.add_argument("--nvmf-port", type=int, help="NVMe/TCP port for legs and exports (4420)")
    p.add_argument("--iscsi-port", type=int, help="iSCSI portal port for exports (3260)")
    p.add_argument("--device", action="append", metavar="ID=PATH", help="ID=PATH or ID=bdev:NAME")
    p.add_argument("--lease-ttl", type=int, help="seconds without renewal before the node counts as failed (2)")
    p.add_argument("--fence-url", metavar="URL",
                   help="ssh://user@host[:port]/path/to/spdk.sock (or unix:///path/to/spdk.sock on the "
                        "controller's machine): how the master reaches this node's SPDK to fence it when this "
                        "agent is gone")  # fmt: skip
    p.add_argument("--fence-method", choices=FENCE_METHODS,
                   help="listeners: remove the volume exports; ana: set their ANA state inaccessible "
                        "(iSCSI exports are removed); stop: stop the target (spdk_kill_instance)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spdkvirt.agent.agent import Agent, AgentConfig
    from spdkvirt.agent.devices import DeviceSpec
    from spdkvirt.model.records import Fence
    from spdkvirt.spdk.client import SpdkClient
    from spdkvirt.store import open_store

    start_daemon(args, OPTIONS)
    fence = Fence(args.fence_url, args.fence_method) if args.fence_url else None
    if fence is not None:
        fence.check()
    cfg = AgentConfig(
        args.node_id,
        args.address,
        args.spdk_socket,
        tuple(DeviceSpec.parse(d) for d in args.device),
        nvmf_port=args.nvmf_port,
        lease_ttl=args.lease_ttl,
        iscsi_port=args.iscsi_port,
        fence=fence,
    )

    async def main() -> None:
        store = await open_store(args.store)
        try:
            async with SpdkClient(cfg.spdk_socket) as client:
                await Agent(cfg, store, client).run()
        finally:
            await store.close()

    return serve(main)
