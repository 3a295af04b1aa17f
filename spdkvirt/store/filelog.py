"""On-disk format of the embedded store: an fsync'd append log of JSON lines plus a JSON snapshot.

``log.jsonl``: one line per committed change, ``<json>\\t<crc32 hex>\\n``, where the JSON object has a
``seq`` number (consecutive) and one of: ``rev``+``ch`` (a transaction's changes), ``grant``+``ttl``,
``revoke`` (+``rev``/``ch`` when the lease had keys), ``compact``. A write is acknowledged only after
its line is fsync'd; a crash can only leave a torn last line, which was never acknowledged and is cut
off on open. A damaged line followed by good ones is corruption and is reported, never skipped.

``snapshot.json``: the whole state at some ``seq`` (written to a temp file, fsync'd, renamed, directory
fsync'd); the log is then restarted. Entries with ``seq`` <= the snapshot's are ignored on replay, so a
crash between the two steps is harmless.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spdkvirt.store.errors import CorruptStore

FORMAT = "spdkvirt-file-store"
FORMAT_VERSION = 1
LOG = "log.jsonl"
SNAPSHOT = "snapshot.json"
LOCK = "LOCK"


def encode_line(entry: dict[str, Any]) -> bytes:
    body = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return body + b"\t" + f"{zlib.crc32(body):08x}".encode() + b"\n"


def _decode_line(line: bytes) -> dict[str, Any] | None:
    body, sep, crc = line.rpartition(b"\t")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        entry = json.loads(body)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
        return None
    return entry


@dataclass(frozen=True)
class LogContents:
    entries: list[dict[str, Any]]
    #: length of the good part of the file; anything after it is a torn last write
    good_bytes: int
    total_bytes: int


def read_log(path: Path) -> LogContents:
    """Read every good entry; cut a torn tail; raise CorruptStore for damage before good lines."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LogContents([], 0, 0)
    entries: list[dict[str, Any]] = []
    pos = 0
    bad_at: int | None = None
    bad_line = 0
    lineno = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        lineno += 1
        if end < 0:
            if bad_at is None:
                bad_at = pos
            break
        entry = _decode_line(data[pos:end])
        if entry is None:
            if bad_at is None:
                bad_at = pos
                bad_line = lineno
        elif bad_at is not None:
            raise CorruptStore(f"{path}: line {bad_line} is damaged and good lines follow it")
        else:
            entries.append(entry)
        pos = end + 1
    good = bad_at if bad_at is not None else len(data)
    return LogContents(entries, good, len(data))


def iter_entries_after(entries: list[dict[str, Any]], seq: int, path: Path) -> Iterator[dict[str, Any]]:
    """Entries with seq > ``seq``, checking they are consecutive."""
    expect: int | None = None
    for entry in entries:
        n = entry["seq"]
        if n <= seq:
            continue
        if expect is not None and n != expect:
            raise CorruptStore(f"{path}: entry {n} follows entry {expect - 1}")
        if expect is None and n != seq + 1:
            raise CorruptStore(f"{path}: first entry after snapshot {seq} is {n}")
        expect = n + 1
        yield entry


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync the directory."""
    os.replace(write_temp(path, data), path)
    fsync_dir(path.parent)


def write_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``'s temp file and fsync it; returns the temp file's path."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def append_durable(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    os.fdatasync(fd)


def encode_snapshot(state: dict[str, Any]) -> bytes:
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def read_snapshot(path: Path) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise CorruptStore(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptStore(f"{path}: not a {FORMAT} snapshot")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CorruptStore(f"{path}: unsupported format_version {doc.get('format_version')!r}")
    return doc
