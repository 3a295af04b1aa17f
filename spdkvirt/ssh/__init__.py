"""SSH: SPDK RPC sockets on other hosts (`ssh://user@host[:port]/path/to/spdk.sock`) and remote commands.

The one place spdkvirt uses paramiko. `SshTransport` is an SPDK `Transport`;
`spdkvirt.spdk.transport.parse_address` hands out one for ssh:// addresses, importing this package
only then. `run_command` runs out-of-band actions. `SshOptions` (identities, known_hosts,
accept-new-host, timeout) come from the command line (`set_default_options`) or the environment.
"""

from __future__ import annotations

from .command import CommandResult, run_command
from .connection import close_connections
from .errors import (
    ChannelOpenRefused,
    CommandTimeout,
    HostKeyChanged,
    HostKeyError,
    SocketUnreachable,
    SshAuthError,
    SshConnectError,
    SshError,
    UnknownHostKey,
)
from .options import SshOptions, default_options, set_default_options
from .transport import SshTransport
from .url import SshTarget, is_ssh_url, parse_ssh_url

__all__ = [
    "ChannelOpenRefused",
    "CommandResult",
    "CommandTimeout",
    "HostKeyChanged",
    "HostKeyError",
    "SocketUnreachable",
    "SshAuthError",
    "SshConnectError",
    "SshError",
    "SshOptions",
    "SshTarget",
    "SshTransport",
    "UnknownHostKey",
    "close_connections",
    "default_options",
    "is_ssh_url",
    "parse_ssh_url",
    "run_command",
    "set_default_options",
]
