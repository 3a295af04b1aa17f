"""Command-line flags for ssh:// SPDK addresses: `add_ssh_flags(parser)`, then `apply_ssh_flags(args)`.

Flags add to what the environment says (SPDKVIRT_SSH_IDENTITY, SPDKVIRT_SSH_KNOWN_HOSTS,
SPDKVIRT_SSH_ACCEPT_NEW_HOST; see `spdkvirt.ssh.options`): given identities or known_hosts files
replace the environment's, --ssh-accept-new-host turns accepting on. `apply_ssh_flags` makes the
result the process default, used by every ssh:// address from then on. paramiko is not imported.
"""

from __future__ import annotations

import argparse

from spdkvirt.ssh.options import SshOptions, set_default_options


def add_ssh_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("SSH", "for SPDK addresses ssh://user@host[:port]/path/to/spdk.sock")
    group.add_argument(
        "--ssh-identity",
        metavar="FILE",
        action="append",
        default=[],
        help="private key to log in with (repeatable; default: ~/.ssh keys and the agent)",
    )
    group.add_argument(
        "--ssh-known-hosts",
        metavar="FILE",
        action="append",
        default=[],
        help="known_hosts file (repeatable; default: ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)",
    )
    group.add_argument(
        "--ssh-accept-new-host",
        action="store_true",
        help="accept a host not in known_hosts and record it in the first file (a changed key is always refused)",
    )


def ssh_options(args: argparse.Namespace) -> SshOptions:
    """The environment's options with the flags applied; ValueError for a bad environment value."""
    return SshOptions.from_env().merged(
        identities=tuple(getattr(args, "ssh_identity", None) or ()),
        known_hosts=tuple(getattr(args, "ssh_known_hosts", None) or ()),
        accept_new_host=bool(getattr(args, "ssh_accept_new_host", False)),
    )


def apply_ssh_flags(args: argparse.Namespace) -> SshOptions:
    """Make the flags (over the environment) this process's SSH options; returns them."""
    options = ssh_options(args)
    set_default_options(options)
    return options
