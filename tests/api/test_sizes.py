"""Sizes on the command line."""

from __future__ import annotations

import pytest

from spdkvirt.cli.output import progress_bar, table
from spdkvirt.cli.sizes import SizeError, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("64MiB", 64 << 20),
        ("64 MiB", 64 << 20),
        ("64mib", 64 << 20),
        ("64M", 64 << 20),
        ("1.5GiB", 3 << 29),
        ("2TiB", 2 << 40),
        ("1PiB", 1 << 50),
        ("512K", 512 << 10),
        ("0.5KiB", 512),
        ("10B", 10),
    ],
)
def test_parse(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "-1MiB", "1.0000001KiB", "64XB", "1e3", "0x10", "1,5GiB", "64 Mi B"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(SizeError):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1000, "1000 B"), (1024, "1 KiB"), (64 << 20, "64 MiB"), (3 << 29, "1.5 GiB"), (1 << 50, "1 PiB")],
)
def test_format(size: int, text: str) -> None:
    assert format_size(size) == text


def test_progress_bar_and_table() -> None:
    assert progress_bar(50, width=10) == "[#####.....]  50.0%"
    assert progress_bar(150, width=4) == "[####] 100.0%"
    assert table([], []) == "(none)"
    text = table([{"a": "x", "b": None}], [("A", lambda r: r["a"]), ("LONGER", lambda r: r["b"])])
    assert text.splitlines() == ["A  LONGER", "x  -"]
