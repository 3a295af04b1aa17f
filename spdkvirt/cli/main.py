"""Entry point of the ``spdkvirt`` command: argparse with one subcommand group per module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spdkvirt import __version__
from spdkvirt.cli import agent_cmd, api_cmds, controller_cmd, demo_cmd, rpc_cmd, store_cmd, up_cmd
from spdkvirt.cli.config_file import ConfigError

#: command groups: each module has ``register(subparsers)`` and sets ``func`` on its parsers
GROUPS = (up_cmd, demo_cmd, store_cmd, api_cmds, agent_cmd, controller_cmd, rpc_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spdkvirt", description="Control plane for SPDK storage clusters.")
    parser.add_argument("--version", action="version", version=f"spdkvirt {__version__}")
    api_cmds.add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as e:
        parser.exit(2, f"spdkvirt {args.command}: error: {e}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
