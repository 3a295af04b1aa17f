"""``spdkvirt agent``: the node agent (state manager) of one storage node."""

from __future__ import annotations

import argparse

from spdkvirt.cli.daemons import serve, setup_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="run a node agent", description="Run the node agent of one storage node.")
    p.add_argument("--node-id", required=True, help="this node's id")
    p.add_argument("--spdk-socket", required=True, help="SPDK's JSON-RPC socket")
    p.add_argument("--store", required=True, metavar="URL", help="file:///dir or etcd://host:port,...")
    p.add_argument("--address", required=True, help="address other nodes and hosts reach this node at")
    p.add_argument("--nvmf-port", type=int, default=4420, help="NVMe/TCP port for legs and exports")
    p.add_argument("--iscsi-port", type=int, default=3260, help="iSCSI portal port for exports")
    p.add_argument("--device", action="append", default=[], metavar="ID=PATH", help="ID=PATH or ID=bdev:NAME")
    p.add_argument("--lease-ttl", type=int, default=2, help="seconds without renewal before the node counts as failed")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spdkvirt.agent.agent import Agent, AgentConfig
    from spdkvirt.agent.devices import DeviceSpec
    from spdkvirt.spdk.client import SpdkClient
    from spdkvirt.store import open_store

    setup_logging(args.verbose)
    cfg = AgentConfig(
        args.node_id,
        args.address,
        args.spdk_socket,
        tuple(DeviceSpec.parse(d) for d in args.device),
        nvmf_port=args.nvmf_port,
        lease_ttl=args.lease_ttl,
        iscsi_port=args.iscsi_port,
    )

    async def main() -> None:
        store = await open_store(args.store)
        try:
            async with SpdkClient(cfg.spdk_socket) as client:
                await Agent(cfg, store, client).run()
        finally:
            await store.close()

    return serve(main)
