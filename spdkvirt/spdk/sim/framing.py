"""Splitting a byte stream into JSON values the way SPDK's jsonrpc server does.

SPDK parses what has arrived: complete values are taken in order, an incomplete tail waits for
more, and anything unparseable closes the connection without a reply — even when a complete
request came before it in the same read.
"""

from __future__ import annotations

import json
from typing import Any

_WS = b" \t\r\n"
_LITERALS = (b"true", b"false", b"null")


class ParseError(Exception):
    """The buffer holds something that is not JSON: SPDK closes the connection."""


def _value_end(buf: bytes, start: int) -> int | None:
    """Index just past the JSON value at start, None if it is incomplete."""
    c = buf[start : start + 1]
    if c in (b"{", b"["):
        depth = 0
        in_str = False
        esc = False
        for i in range(start, len(buf)):
            ch = buf[i]
            if in_str:
                if esc:
                    esc = False
                elif ch == 0x5C:  # backslash
                    esc = True
                elif ch == 0x22:
                    in_str = False
                continue
            if ch == 0x22:
                in_str = True
            elif ch in (0x7B, 0x5B):
                depth += 1
            elif ch in (0x7D, 0x5D):
                depth -= 1
                if depth == 0:
                    return i + 1
        return None
    if c == b'"':
        i = start + 1
        esc = False
        while i < len(buf):
            ch = buf[i]
            if esc:
                esc = False
            elif ch == 0x5C:
                esc = True
            elif ch == 0x22:
                return i + 1
            i += 1
        return None
    # number or literal: runs to the next delimiter
    i = start
    while i < len(buf) and buf[i] not in _WS and buf[i : i + 1] not in (b"{", b"[", b'"'):
        i += 1
    token = buf[start:i]
    if i == len(buf):
        if any(lit.startswith(token) for lit in _LITERALS) or _number_prefix(token):
            return None
        raise ParseError(token)
    return i


def _number_prefix(token: bytes) -> bool:
    return bool(token) and all(ch in b"0123456789+-.eE" for ch in token)


def split_values(buf: bytes) -> tuple[list[Any], bytes]:
    """Parse every complete value in buf; return them and the incomplete rest.

    Raises ParseError when anything in buf is not JSON (the caller closes the connection).
    """
    values: list[Any] = []
    pos = 0
    n = len(buf)
    while True:
        while pos < n and buf[pos] in _WS:
            pos += 1
        if pos >= n:
            return values, b""
        end = _value_end(buf, pos)
        if end is None:
            return values, buf[pos:]
        try:
            value = json.loads(buf[pos:end])
            # SPDK's parser refuses an unpaired UTF-16 surrogate escape ("\ud800"); Python keeps it
            json.dumps(value, ensure_ascii=False).encode()
        except (ValueError, UnicodeDecodeError, UnicodeEncodeError) as exc:
            raise ParseError(str(exc)) from exc
        values.append(value)
        pos = end
