# -*- coding: utf-8 -*-
# Copyright: spdkvirt authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Volume sizes as the spdkvirt command line reads them: ``4096``, ``64MiB``, ``1.5 GiB``, ``10G``.

Units are binary (KiB = 1024 bytes); ``K``, ``KB``, ``Ki`` and ``KiB`` (and so on up to ``P``) are the
same unit, since block storage sizes are binary. A size must be a whole number of bytes. The API then
wants at least 1 MiB, a multiple of 4096 and at most 1 PiB (:func:`check_volume_size`).
"""

import re
from decimal import Decimal, InvalidOperation

#: the same table as the command line's (spdkvirt/cli/sizes.py)
UNITS = dict(
    [('', 1), ('b', 1)]
    + [(letter + suffix, 1 << (10 * power))
       for power, letter in enumerate('kmgtp', start=1) for suffix in ('', 'i', 'ib', 'b')]
)
_SIZE = re.compile(r'\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*')

MIN_VOLUME = 1 << 20
MAX_VOLUME = 1 << 50
BLOCK = 4096


class SizeError(ValueError):
    """A size that cannot be read or that the API would refuse."""


def parse_size(text):
    """Bytes for ``text`` (a str or an int)."""
    if isinstance(text, bool):
        raise SizeError('bad size %r' % (text,))
    if isinstance(text, int):
        return text
    m = _SIZE.fullmatch(str(text))
    if m is None:
        raise SizeError('bad size %r: use bytes or a number with a unit, e.g. 64MiB, 10G or 1.5GiB' % (text,))
    number, unit = m.groups()
    factor = UNITS.get(unit.lower())
    if factor is None:
        raise SizeError('bad size %r: unknown unit %r (KiB, MiB, GiB, TiB, PiB)' % (text, unit))
    try:
        value = Decimal(number) * factor
    except InvalidOperation:
        raise SizeError('bad size %r' % (text,)) from None
    if value != value.to_integral_value():
        raise SizeError('bad size %r: not a whole number of bytes' % (text,))
    return int(value)


def check_volume_size(size):
    """``size`` if the API accepts it for a volume, else SizeError saying why."""
    if size < MIN_VOLUME:
        raise SizeError('must be at least 1 MiB (%d bytes), got %d' % (MIN_VOLUME, size))
    if size > MAX_VOLUME:
        raise SizeError('must be at most 1 PiB (%d bytes), got %d' % (MAX_VOLUME, size))
    if size % BLOCK:
        raise SizeError('must be a multiple of %d bytes, got %d' % (BLOCK, size))
    return size
