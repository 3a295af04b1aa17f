"""How this process logs in over SSH: identities, known_hosts files, unknown-host policy, timeouts.

`SshOptions()` means OpenSSH-like defaults: paramiko's usual keys in ~/.ssh plus a running agent,
host keys from ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, unknown hosts refused. Daemons
started by service units are configured from the environment (`SshOptions.from_env()`):

* `SPDKVIRT_SSH_IDENTITY` — private key file(s), separated by `:`; when set only these are used
* `SPDKVIRT_SSH_KNOWN_HOSTS` — known_hosts file(s), separated by `:`; the first records accepted hosts
* `SPDKVIRT_SSH_ACCEPT_NEW_HOST=1` — accept and record a host not yet known (a changed key is always refused)
* `SPDKVIRT_SSH_CONNECT_TIMEOUT` — seconds to connect, log in and open a channel

`default_options()` is what ssh:// addresses use when no options are given: what
`set_default_options()` set (the command line does), else the environment.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace

DEFAULT_KNOWN_HOSTS: tuple[str, ...] = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
DEFAULT_CONNECT_TIMEOUT = 10.0

ENV_IDENTITY = "SPDKVIRT_SSH_IDENTITY"
ENV_KNOWN_HOSTS = "SPDKVIRT_SSH_KNOWN_HOSTS"
ENV_ACCEPT_NEW_HOST = "SPDKVIRT_SSH_ACCEPT_NEW_HOST"
ENV_CONNECT_TIMEOUT = "SPDKVIRT_SSH_CONNECT_TIMEOUT"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class SshOptions:
    """Login settings; `identities` empty means ~/.ssh keys and the agent, `known_hosts` empty the defaults."""

    identities: tuple[str, ...] = ()
    known_hosts: tuple[str, ...] = ()
    accept_new_host: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    def __post_init__(self) -> None:
        if not self.connect_timeout > 0:
            raise ValueError(f"connect_timeout must be positive, got {self.connect_timeout!r}")

    @property
    def known_hosts_files(self) -> tuple[str, ...]:
        """The known_hosts files to read, user-expanded; the first one records accepted hosts."""
        return tuple(os.path.expanduser(p) for p in (self.known_hosts or DEFAULT_KNOWN_HOSTS))

    @property
    def identity_files(self) -> tuple[str, ...]:
        return tuple(os.path.expanduser(p) for p in self.identities)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SshOptions:
        """Options from SPDKVIRT_SSH_* variables (see the module docstring); ValueError on bad values."""
        env = os.environ if env is None else env
        accept = env.get(ENV_ACCEPT_NEW_HOST, "").strip().lower()
        if accept not in _TRUE | _FALSE:
            raise ValueError(f"{ENV_ACCEPT_NEW_HOST} must be 1 or 0, got {accept!r}")
        timeout_text = env.get(ENV_CONNECT_TIMEOUT, "").strip()
        try:
            timeout = float(timeout_text) if timeout_text else DEFAULT_CONNECT_TIMEOUT
        except ValueError:
            raise ValueError(f"{ENV_CONNECT_TIMEOUT} must be a number of seconds, got {timeout_text!r}") from None
        return cls(
            identities=_paths(env.get(ENV_IDENTITY, "")),
            known_hosts=_paths(env.get(ENV_KNOWN_HOSTS, "")),
            accept_new_host=accept in _TRUE,
            connect_timeout=timeout,
        )

    def merged(
        self,
        *,
        identities: tuple[str, ...] = (),
        known_hosts: tuple[str, ...] = (),
        accept_new_host: bool = False,
        connect_timeout: float | None = None,
    ) -> SshOptions:
        """These options with what was given explicitly (non-empty, true, not None) taking precedence."""
        return replace(
            self,
            identities=identities or self.identities,
            known_hosts=known_hosts or self.known_hosts,
            accept_new_host=accept_new_host or self.accept_new_host,
            connect_timeout=self.connect_timeout if connect_timeout is None else connect_timeout,
        )


def _paths(value: str) -> tuple[str, ...]:
    return tuple(p for p in (s.strip() for s in value.split(os.pathsep)) if p)


_default: SshOptions | None = None
_default_lock = threading.Lock()


def set_default_options(options: SshOptions | None) -> None:
    """The options ssh:// addresses use from now on in this process (None: back to the environment)."""
    global _default  # noqa: PLW0603 - one process-wide setting, like the environment it stands for
    with _default_lock:
        _default = options


def default_options() -> SshOptions:
    with _default_lock:
        current = _default
    return current if current is not None else SshOptions.from_env()
