"""Typed SSH failures. All are OSError, as a transport that cannot open a connection raises."""

from __future__ import annotations


class SshError(OSError):
    """Something went wrong reaching a host or a socket over SSH; str() says what and where."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SshConnectError(SshError):
    """The TCP connection or the SSH handshake to the host failed."""


class SshAuthError(SshError):
    """The server accepted none of the keys offered."""


class HostKeyError(SshError):
    """The server's host key could not be trusted."""

    def __init__(self, message: str, *, host: str, key_type: str, fingerprint: str) -> None:
        super().__init__(message)
        self.host = host
        self.key_type = key_type
        self.fingerprint = fingerprint


class UnknownHostKey(HostKeyError):
    """No known_hosts file knows this host: refused unless the operator opts in."""


class HostKeyChanged(HostKeyError):
    """The host presented a key other than the one recorded for it: always refused."""

    def __init__(self, message: str, *, host: str, key_type: str, fingerprint: str, expected: str) -> None:
        super().__init__(message, host=host, key_type=key_type, fingerprint=fingerprint)
        self.expected = expected


class ChannelOpenRefused(SshError):
    """The server refused to open a channel (RFC 4254 reason code and text)."""

    ADMINISTRATIVELY_PROHIBITED = 1
    CONNECT_FAILED = 2

    def __init__(self, message: str, *, kind: str, code: int, reason: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.reason = reason

    @property
    def prohibited(self) -> bool:
        """The server does not allow this kind of channel for this login (a `restrict` key, say)."""
        return self.code == self.ADMINISTRATIVELY_PROHIBITED


class SocketUnreachable(SshError):
    """Neither way of reaching the remote UNIX socket worked; the message lists what was tried."""


class CommandTimeout(SshError, TimeoutError):
    """A remote command did not finish within its deadline (it was abandoned, not killed)."""
