"""Opening a `direct-streamlocal@openssh.com` channel: a byte stream to a UNIX socket on the server.

paramiko's `Transport.open_channel` writes no type-specific fields for this channel type (paramiko
issue #544), so the CHANNEL_OPEN message is built here, as OpenSSH's client sends it:

    byte    SSH_MSG_CHANNEL_OPEN
    string  "direct-streamlocal@openssh.com"
    uint32  sender channel, initial window size, maximum packet size
    string  socket path
    string  reserved ("")
    uint32  reserved (0)

and the channel is registered with the transport exactly as `open_channel` does (that bookkeeping is
paramiko-internal; this module is the only place that touches it).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import paramiko
from paramiko.common import cMSG_CHANNEL_OPEN

from .errors import ChannelOpenRefused, SshError

KIND = "direct-streamlocal@openssh.com"


def open_streamlocal(transport: paramiko.Transport, path: str, *, timeout: float) -> paramiko.Channel:
    """A channel connected to the UNIX socket `path` on the server; ChannelOpenRefused when refused."""
    if not transport.is_active():
        raise SshError("SSH session not active")
    t: Any = transport  # paramiko's channel table and locks are not part of its typed API
    t.lock.acquire()
    try:
        window = t._sanitize_window_size(None)
        max_packet = t._sanitize_packet_size(None)
        chanid = t._next_channel()
        m = paramiko.Message()
        m.add_byte(cMSG_CHANNEL_OPEN)
        m.add_string(KIND)
        m.add_int(chanid)
        m.add_int(window)
        m.add_int(max_packet)
        m.add_string(path)
        m.add_string("")
        m.add_int(0)
        chan: Any = paramiko.Channel(chanid)
        t._channels.put(chanid, chan)
        event = threading.Event()
        t.channel_events[chanid] = event
        t.channels_seen[chanid] = True
        chan._set_transport(transport)
        chan._set_window(window, max_packet)
    finally:
        t.lock.release()
    t._send_user_message(m)
    deadline = time.monotonic() + timeout
    while not event.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
        if not transport.is_active():
            raise SshError(f"SSH session ended while opening a {KIND} channel to {path}: {transport.get_exception()}")
        if time.monotonic() >= deadline:
            with t.lock:
                t._channels.delete(chanid)
                t.channel_events.pop(chanid, None)
            raise SshError(f"timed out after {timeout} s opening a {KIND} channel to {path}")
    opened: paramiko.Channel | None = t._channels.get(chanid)
    if opened is not None:
        return opened
    exc = transport.get_exception()
    if isinstance(exc, paramiko.ChannelException):
        raise ChannelOpenRefused(
            f"server refused {KIND} channel to {path}: {exc.text} (code {exc.code})",
            kind=KIND,
            code=exc.code,
            reason=exc.text,
        )
    raise SshError(f"could not open {KIND} channel to {path}: {exc or 'no reason given'}")
