"""``spdkvirt store dump|check`` on a file store with good, bad and dangling records."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from spdkvirt.cli.main import main
from spdkvirt.store import Put, keys, open_store
from tests.store import records


async def fill(url: str, bad: bool) -> None:
    async with await open_store(url) as s:
        await s.put(keys.node("n1"), records.node("n1"))
        await s.put(keys.node("n2"), records.node("n2"))
        await s.put(keys.device("n1", "d1"), records.device("n1", "d1"))
        await s.put(keys.device("n2", "d1"), records.device("n2", "d1"))
        await s.put(keys.volume("v1"), records.volume("v1"))
        await s.put(keys.export("v1", "e1"), records.export_nvmf("v1", "e1"))
        await s.put(keys.epoch(1), records.epoch(1))
        await s.put(keys.ack(1, "n1"), records.ack(1, "n1"))
        await s.put(keys.journal("op1"), records.journal("op1"))
        if bad:
            await s.backend.txn([], [Put(keys.node("n3"), records.node("n3", state="melted"))], [])
            await s.put(keys.export("v9", "e1"), records.export_iscsi("v9", "e1"))


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"file://{tmp_path}/store"


def test_check_passes_on_a_good_database(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(fill(url, bad=False))
    assert main(["store", "check", "--store", url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 9 records") and "0 error(s), 0 warning(s)" in out


def test_check_reports_bad_records_with_key_and_path(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(fill(url, bad=True))
    assert main(["store", "check", "--store", url]) == 1
    out = capsys.readouterr().out
    assert "error: /spdkvirt/node/n3: $.state: 'melted' is not one of" in out
    assert "warning: /spdkvirt/export/v9/e1: $.volume: refers to volume /spdkvirt/volume/v9" in out
    assert "FAILED: 11 records" in out


def test_strict_check_fails_on_warnings(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def dangling() -> None:
        async with await open_store(url) as s:
            await s.put(keys.device("n7", "d1"), records.device("n7", "d1"))

    asyncio.run(dangling())
    assert main(["store", "check", "--store", url]) == 0
    assert main(["store", "check", "--strict", "--store", url]) == 1
    assert "refers to node /spdkvirt/node/n7" in capsys.readouterr().out


def test_dump_prints_everything_and_flags_bad_records(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(fill(url, bad=True))
    assert main(["store", "dump", "--store", url, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["count"] == 11 and doc["store"] == url
    by_key = {r["key"]: r for r in doc["records"]}
    assert by_key[keys.node("n3")]["problems"] == [
        "$.state: 'melted' is not one of ['up', 'down', 'draining', 'removed']"
    ]
    assert by_key[keys.node("n3")]["value"]["state"] == "melted"
    assert "problems" not in by_key[keys.node("n1")]

    assert main(["store", "dump", "--store", url, "--prefix", keys.prefix("node")]) == 0
    doc2 = yaml.safe_load(capsys.readouterr().out)
    assert [r["key"] for r in doc2["records"]] == [keys.node("n1"), keys.node("n2"), keys.node("n3")]


def test_unusable_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "check", "--store", f"file://{tmp_path}/nothing-here"]) == 2
    assert "no file store" in capsys.readouterr().err
    assert main(["store", "dump", "--store", "gopher://x"]) == 2
    assert "unknown store URL scheme" in capsys.readouterr().err
    assert not (tmp_path / "nothing-here").exists()
