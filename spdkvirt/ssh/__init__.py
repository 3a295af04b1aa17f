"""SSH: SPDK RPC sockets on other hosts (`ssh://user@host[:port]/path/to/spdk.sock`) and remote commands.

The one place spdkvirt uses paramiko. `SshTransport` is an SPDK `Transport`;
`spdkvirt.spdk.transport.parse_address` hands out one for ssh:// addresses. `run_command` runs
out-of-band actions. `SshOptions` (identities, known_hosts, accept-new-host, timeout) come from the
command line (`set_default_options`) or the environment.

Names are loaded on first use, so `spdkvirt.ssh.options` (all the command line needs) does not
import paramiko.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "CommandResult": "command",
    "run_command": "command",
    "close_connections": "connection",
    "ChannelOpenRefused": "errors",
    "CommandTimeout": "errors",
    "HostKeyChanged": "errors",
    "HostKeyError": "errors",
    "SocketUnreachable": "errors",
    "SshAuthError": "errors",
    "SshConnectError": "errors",
    "SshError": "errors",
    "UnknownHostKey": "errors",
    "SshOptions": "options",
    "default_options": "options",
    "set_default_options": "options",
    "SshTransport": "transport",
    "SshTarget": "url",
    "is_ssh_url": "url",
    "parse_ssh_url": "url",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
