"""Key layout and store URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from spdkvirt.store import EtcdConfig, FileConfig, keys, parse_url
from tests.store import records


def test_record_keys_round_trip() -> None:
    for kind, make in records.EXAMPLES.items():
        rec = make()
        key = keys.for_record(rec)
        info = keys.parse(key)
        assert info.kind == kind and key.startswith(keys.prefix(kind))


def test_epochs_sort_numerically() -> None:
    assert keys.epoch(9) < keys.epoch(10) < keys.epoch(100)
    assert keys.ack(2, "n1").startswith(keys.acks(2))
    assert keys.leader("master", 0xABC) == "/spdkvirt/leader/master/0000000000000abc"


@pytest.mark.parametrize(
    "bad", ["/spdkvirt/node", "/spdkvirt/node/a/b", "/other/node/a", "/spdkvirt/nope/a", "/spdkvirt/node/"]
)
def test_bad_keys(bad: str) -> None:
    with pytest.raises(keys.KeyLayoutError):
        keys.parse(bad)


@pytest.mark.parametrize("bad", ["", "a/b", "-x", "x" * 200, "a b"])
def test_bad_ids(bad: str) -> None:
    with pytest.raises(keys.KeyLayoutError):
        keys.node(bad)


def test_file_urls() -> None:
    cfg = parse_url("file:///var/lib/spdkvirt/store?snapshot_bytes=1000&history=5")
    assert cfg == FileConfig(Path("/var/lib/spdkvirt/store"), 1000, 5)
    with pytest.raises(ValueError, match="local directory"):
        parse_url("file://host/x")
    with pytest.raises(ValueError, match="unknown option"):
        parse_url("file:///x?colour=red")


def test_etcd_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_url("etcd://10.0.0.1:2379,[::1]:2380,node3/prod?timeout=2")
    assert isinstance(cfg, EtcdConfig)
    assert cfg.endpoints == (("10.0.0.1", 2379), ("::1", 2380), ("node3", 2379))
    assert cfg.namespace == "/prod" and cfg.timeout == 2 and not cfg.tls
    tls = parse_url("etcds://root:p%40ss@h:1?cacert=/ca.pem&cert=/c.pem&key=/k.pem")
    assert isinstance(tls, EtcdConfig)
    assert tls.tls and tls.user == "root" and tls.password == "p@ss" and tls.ca_file == "/ca.pem"
    assert "p@ss" not in repr(tls)
    monkeypatch.setenv("SPDKVIRT_ETCD_PASSWORD", "from-env")
    env = parse_url("etcd://admin@h:1")
    assert isinstance(env, EtcdConfig) and env.password == "from-env"
    monkeypatch.delenv("SPDKVIRT_ETCD_PASSWORD")
    with pytest.raises(ValueError, match="no password"):
        parse_url("etcd://admin@h:1")
    with pytest.raises(ValueError, match="scheme"):
        parse_url("redis://h:1")
