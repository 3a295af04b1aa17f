"""Running a long-lived spdkvirt process: logging, signals, a clean stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from spdkvirt.cli.config_file import Option, add_config_flag, merge_config
from spdkvirt.cli.ssh_flags import add_ssh_flags, apply_ssh_flags

#: what every daemon's config file may hold besides its own options
COMMON_OPTIONS = (
    Option("ssh_identity", "ssh_identity", list, []),
    Option("ssh_known_hosts", "ssh_known_hosts", list, []),
    Option("ssh_accept_new_host", "ssh_accept_new_host", bool, False),
    Option("verbose", "verbose", bool, False),
)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def serve(main: Callable[[], Awaitable[None]]) -> int:
    """Run ``main`` until it ends or SIGTERM/SIGINT arrives; 0 on a requested stop."""

    async def runner() -> None:
        task = asyncio.ensure_future(main())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(runner())
    return 0


def add_daemon_flags(p: argparse.ArgumentParser) -> None:
    """--config, the --ssh-* flags and -v; unset unless given, so a config file can fill them."""
    add_config_flag(p)
    add_ssh_flags(p)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(ssh_identity=None, ssh_known_hosts=None, ssh_accept_new_host=None, verbose=None)


def start_daemon(args: argparse.Namespace, options: Sequence[Option]) -> None:
    """Options from the command line over the --config file over defaults, then logging and SSH."""
    merge_config(args, (*options, *COMMON_OPTIONS))
    setup_logging(args.verbose)
    apply_ssh_flags(args)
