"""Address parsing: UNIX socket paths and tcp://host:port."""

from __future__ import annotations

import pytest

from spdkvirt.spdk.transport import TcpTransport, UnixTransport, parse_address


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("/var/tmp/spdk.sock", UnixTransport("/var/tmp/spdk.sock")),
        ("spdk.sock", UnixTransport("spdk.sock")),
        ("unix:/run/spdk.sock", UnixTransport("/run/spdk.sock")),
        ("unix:///run/spdk.sock", UnixTransport("/run/spdk.sock")),
        ("tcp://127.0.0.1:5260", TcpTransport("127.0.0.1", 5260)),
        ("tcp://[::1]:5260", TcpTransport("::1", 5260)),
        ("tcp://localhost:1", TcpTransport("localhost", 1)),
    ],
)
def test_parse_address(address: str, expected: object) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        "",
        "unix:",
        "tcp://127.0.0.1",
        "tcp://:5260",
        "tcp://h:notaport",
        "tcp://h:1/path",
        "ssh://node1",
        "http://h:1",
    ],
)
def test_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError):
        parse_address(address)


def test_str() -> None:
    assert str(TcpTransport("::1", 5260)) == "tcp://[::1]:5260"
    assert str(TcpTransport("127.0.0.1", 5260)) == "tcp://127.0.0.1:5260"
    assert str(UnixTransport("/x.sock")) == "/x.sock"
