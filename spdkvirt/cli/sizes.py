"""Sizes on the command line: ``64MiB``, ``1.5 GiB``, ``4096`` in; ``64 MiB`` out.

Units are binary (KiB = 1024 bytes); ``K``, ``M``, ``G``, ``T``, ``P`` and ``KB``... are read as the same
binary units, since block storage sizes are binary. A size must come out as a whole number of bytes.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "ki": 1 << 10,
    "kib": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mi": 1 << 20,
    "mib": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gi": 1 << 30,
    "gib": 1 << 30,
    "gb": 1 << 30,
    "t": 1 << 40,
    "ti": 1 << 40,
    "tib": 1 << 40,
    "tb": 1 << 40,
    "p": 1 << 50,
    "pi": 1 << 50,
    "pib": 1 << 50,
    "pb": 1 << 50,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")
_SHOWN = (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


class SizeError(ValueError):
    """A size that cannot be read."""


def parse_size(text: str) -> int:
    """Bytes for ``text`` such as ``64MiB``, ``1.5GiB``, ``512K`` or ``4096``."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise SizeError(f"bad size {text!r}: use a number with an optional unit, e.g. 64MiB or 1.5GiB")
    number, unit = m.groups()
    factor = UNITS.get(unit.lower())
    if factor is None:
        raise SizeError(f"bad size {text!r}: unknown unit {unit!r} (KiB, MiB, GiB, TiB, PiB)")
    try:
        value = Decimal(number) * factor
    except InvalidOperation:
        raise SizeError(f"bad size {text!r}") from None
    if value != value.to_integral_value():
        raise SizeError(f"bad size {text!r}: not a whole number of bytes")
    return int(value)


def format_size(size: int) -> str:
    """``size`` bytes in the largest unit that shows it with at most two decimals, e.g. ``1.5 GiB``."""
    for name, factor in _SHOWN:
        if size >= factor:
            value = size / factor
            text = f"{value:.2f}".rstrip("0").rstrip(".")
            return f"{text} {name}"
    return f"{size} B"
