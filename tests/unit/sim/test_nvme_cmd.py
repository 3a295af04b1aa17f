"""NVMe queue entries: fields where the specification puts them, status as Linux decodes it."""

from __future__ import annotations

import struct

import pytest

from spdkvirt.spdk.sim.nvme_cmd import (
    ANA_INACCESSIBLE,
    DNR,
    INVALID_NAMESPACE,
    SGL_DATA_BLOCK_OFFSET,
    SGL_TRANSPORT_DATA_BLOCK,
    Admin,
    Command,
    Completion,
    Fabrics,
    Io,
    command,
)


def test_a_read_has_its_fields_where_the_specification_puts_them() -> None:
    c = command(Io.READ, cid=0x1234, nsid=7, dwords={10: 0x89ABCDEF, 11: 0x01, 12: 7}, length=4096)
    raw = c.raw
    assert raw[0] == 0x02 and raw[1] == 0x40 and raw[2:4] == b"\x34\x12"
    assert struct.unpack_from("<I", raw, 4)[0] == 7
    assert (c.opcode, c.cid, c.nsid, c.slba, c.nlb) == (Io.READ, 0x1234, 7, 0x1_89ABCDEF, 8)
    assert c.sgl == (0, 4096, SGL_TRANSPORT_DATA_BLOCK)


def test_a_fabrics_command_has_its_type_where_others_have_the_nsid() -> None:
    c = command(Admin.FABRICS, cid=1, fctype=Fabrics.CONNECT, length=1024, in_capsule=True)
    assert (c.opcode, c.fctype) == (0x7F, 0x01)
    assert c.sgl == (0, 1024, SGL_DATA_BLOCK_OFFSET)


def test_only_whole_entries() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        Command(bytes(63))


@pytest.mark.parametrize(
    ("c", "status_word", "text"),
    [
        (Completion(5), 0x0000, "ok"),
        (Completion(5, INVALID_NAMESPACE | DNR), (0x0B | DNR) << 1, "sct=0 sc=11"),
        (Completion(5, ANA_INACCESSIBLE), 0x302 << 1, "sct=3 sc=2"),
    ],
)
def test_completion_status_sits_above_the_phase_tag(c: Completion, status_word: int, text: str) -> None:
    raw = c.encode()
    assert len(raw) == 16 and struct.unpack_from("<HH", raw, 12) == (5, status_word)
    assert Completion.decode(raw) == c and c.text == text
