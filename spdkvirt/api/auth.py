"""Bearer tokens of the HTTP listener: read from a private file, compared in constant time.

The token file must be a regular file owned by the user running spdkvirt and neither readable nor
writable by group or others (``chmod 600``); anything else is refused with a message saying how to fix
it, before a listener starts (and before a client sends the token anywhere).
"""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path

#: shortest token accepted
MIN_TOKEN = 16
_MAX_TOKEN = 4096


class TokenFileError(Exception):
    """The token file is missing, unsafe or holds no usable token."""


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in ``path`` (surrounding whitespace removed), after checking the file is private."""
    where = Path(path)
    try:
        fd = os.open(where, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TokenFileError(f"token file {where} does not exist") from None
    except OSError as e:
        raise TokenFileError(f"token file {where}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TokenFileError(f"token file {where} is not a regular file")
        if st.st_uid != os.geteuid():
            raise TokenFileError(
                f"token file {where} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
            )
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise TokenFileError(
                f"token file {where} is accessible by group or others (mode {mode:04o}): run chmod 600 {where}"
            )
        raw = os.read(fd, _MAX_TOKEN + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_TOKEN:
        raise TokenFileError(f"token file {where} is longer than {_MAX_TOKEN} bytes")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise TokenFileError(f"token file {where} holds non-ASCII bytes") from None
    if len(token) < MIN_TOKEN or not token.isprintable() or any(c.isspace() for c in token):
        raise TokenFileError(
            f"token file {where}: the token must be at least {MIN_TOKEN} printable characters, no spaces"
        )
    return token


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` as a Bearer token (constant-time compare)."""
    if header is None:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode("ascii"))
