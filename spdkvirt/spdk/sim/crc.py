"""CRC32C (Castagnoli), as SPDK's raid superblock and NVMe/TCP's digests use it."""

from __future__ import annotations


def _table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """Plain crc32c update (no pre/post inversion), as the superblock checksum uses it."""
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def crc32c_digest(data: bytes) -> int:
    """The standard CRC32C (initial value and final xor all ones): NVMe/TCP's header and data digest."""
    return crc32c(data, 0xFFFFFFFF) ^ 0xFFFFFFFF
