"""NVMe/TCP PDUs: every kind through encode and decode, with and without digests and padding;
the layouts Linux's host and SPDK's target put on the wire; what breaks the transport's rules."""

from __future__ import annotations

import asyncio
import struct

import pytest

from spdkvirt.spdk.sim.crc import crc32c_digest
from spdkvirt.spdk.sim.nvme_pdu import (
    PLAIN,
    R2T,
    C2HData,
    CapsuleCmd,
    CapsuleResp,
    DataDigestError,
    Digests,
    Fes,
    H2CData,
    ICReq,
    ICResp,
    Pdu,
    PduError,
    TermReq,
    decode,
    encode,
    read_pdu,
)

SQE = bytes(range(64))
CQE = bytes(range(100, 116))
PDUS: list[Pdu] = [
    ICReq(),
    ICReq(hpda=3, hdgst=True, ddgst=True, maxr2t=15),
    ICResp(cpda=1, hdgst=True, maxh2cdata=8192),
    TermReq(c2h=True, fes=Fes.INVALID_HEADER_FIELD, fei=2, header=bytes(24)),
    TermReq(c2h=False, fes=Fes.HEADER_DIGEST_ERROR),
    CapsuleCmd(SQE),
    CapsuleCmd(SQE, b"in-capsule data" * 4),
    CapsuleResp(CQE),
    H2CData(7, 3, 4096, b"\xab" * 512, last=False),
    C2HData(9, 0, b"\xcd" * 4096, last=True, success=True),
    R2T(5, 2, 0, 65536),
]
NEGOTIATED = [PLAIN, Digests(hdgst=True), Digests(ddgst=True), Digests(True, True), Digests(True, True, pda=3)]


@pytest.mark.parametrize("d", NEGOTIATED, ids=str)
@pytest.mark.parametrize("pdu", PDUS, ids=lambda p: type(p).__name__)
def test_every_pdu_comes_back_as_it_went(pdu: Pdu, d: Digests) -> None:
    raw = encode(pdu, d)
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw)
    assert decode(raw, d) == pdu


def test_data_starts_where_the_receiver_asked() -> None:
    raw = encode(C2HData(1, 0, b"x" * 8), Digests(hdgst=True, pda=3))  # 24 + 4 digest, aligned to 16
    assert raw[3] == 32 and raw[32:40] == b"x" * 8


@pytest.mark.parametrize(
    ("pdu", "wire"),
    [
        # Linux's nvme_tcp_init_connection: no digests, hpda 0, maxr2t 0
        (ICReq(), struct.pack("<BBBBI", 0, 0, 128, 0, 128) + bytes(120)),
        # SPDK's target: ICResp with its maxh2cdata
        (ICResp(maxh2cdata=131072), struct.pack("<BBBBIHBBI", 1, 0, 128, 0, 128, 0, 0, 0, 131072) + bytes(112)),
        (H2CData(4, 1, 8192, b"d" * 16), struct.pack("<BBBBIHHII4x", 6, 0x04, 24, 24, 40, 4, 1, 8192, 16) + b"d" * 16),
        (R2T(4, 1, 0, 4096), struct.pack("<BBBBIHHII4x", 9, 0, 24, 0, 24, 4, 1, 0, 4096)),
        (CapsuleCmd(SQE, b"c" * 8), struct.pack("<BBBBI", 4, 0, 72, 72, 80) + SQE + b"c" * 8),
    ],
    ids=["icreq", "icresp", "h2c", "r2t", "cmd"],
)
def test_layouts_on_the_wire(pdu: Pdu, wire: bytes) -> None:
    assert encode(pdu) == wire


def test_header_digest_covers_the_header() -> None:
    raw = encode(CapsuleResp(CQE), Digests(hdgst=True))
    assert raw[1] == 0x01 and raw[24:28] == crc32c_digest(raw[:24]).to_bytes(4, "little")


def corrupt(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]


@pytest.mark.parametrize(
    ("raw", "d", "fes"),
    [
        (corrupt(encode(CapsuleResp(CQE)), 0), PLAIN, Fes.INVALID_HEADER_FIELD),  # unknown type
        (encode(CapsuleResp(CQE))[:2] + b"\x30" + encode(CapsuleResp(CQE))[3:], PLAIN, Fes.INVALID_HEADER_FIELD),
        (corrupt(encode(CapsuleResp(CQE), Digests(hdgst=True)), 12), Digests(hdgst=True), Fes.HEADER_DIGEST_ERROR),
        (encode(CapsuleResp(CQE)), Digests(hdgst=True), Fes.INVALID_HEADER_FIELD),  # digest missing
        (encode(CapsuleResp(CQE), Digests(hdgst=True)), PLAIN, Fes.INVALID_HEADER_FIELD),  # not negotiated
    ],
    ids=["type", "hlen", "header-digest", "digest-missing", "digest-unasked"],
)
def test_what_breaks_the_rules_ends_the_connection(raw: bytes, d: Digests, fes: Fes) -> None:
    with pytest.raises(PduError) as e:
        decode(raw, d)
    assert e.value.fes == fes


def test_a_bad_data_digest_fails_the_command_only() -> None:
    d = Digests(ddgst=True)
    raw = encode(H2CData(3, 1, 0, b"z" * 64), d)
    with pytest.raises(DataDigestError) as e:
        decode(corrupt(raw, 30), d)
    assert e.value.header[:1] == b"\x06"


async def test_read_pdu_refuses_an_oversized_pdu_before_reading_it() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(encode(C2HData(1, 0, b"q" * 4096))[:8])  # the rest never comes
    with pytest.raises(PduError) as e:
        await asyncio.wait_for(read_pdu(reader, max_plen=1024), 1.0)
    assert e.value.fes == Fes.DATA_TRANSFER_LIMIT_EXCEEDED


async def test_read_pdu_reads_one_pdu_after_another() -> None:
    reader = asyncio.StreamReader()
    for p in PDUS:
        reader.feed_data(encode(p))
    reader.feed_eof()
    assert [await read_pdu(reader) for _ in PDUS] == PDUS
    with pytest.raises(asyncio.IncompleteReadError):
        await read_pdu(reader)
