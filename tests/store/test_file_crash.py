"""A crash at any point loses no acknowledged write of the file store.

A writer process makes compare-and-swap writes and two-key transactions (with a snapshot every few
writes) and is killed: by SIGKILL at random moments, and at random file-system calls (before, after,
or in the middle of a write). After each crash the directory must open cleanly, hold every
acknowledged write, at most the one write that was in flight on top, and both keys of every pair.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from spdkvirt.store import keys, open_store
from tests.store.crash_writer import COUNTERS, PA, PB, STORE_OPTIONS

WRITER = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).resolve().parents[2]


async def read_state(directory: Path) -> tuple[dict[str, int], int]:
    store = await open_store(f"file://{directory}?{STORE_OPTIONS}")
    try:
        snap = await store.range(keys.prefix("node"))
        return {kv.key: kv.value["generation"] for kv in snap.kvs}, snap.revision
    finally:
        await store.close()


def run_writer(directory: Path, seed: int, crash_at: int | None, kill_after: float | None) -> list[str]:
    args = [sys.executable, str(WRITER), str(directory), str(seed)]
    if crash_at is not None:
        args.append(str(crash_at))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.strip() == "READY", proc.stderr.read() if proc.stderr else ready
        if kill_after is not None:
            time.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (-signal.SIGKILL, 137), f"writer ended with {proc.returncode}: {err}"
    return [line for line in out.splitlines() if line.startswith("ACK ")]


def check_round(before: dict[str, int], acks: list[str], after: dict[str, int], revision: int) -> int:
    acked: dict[str, int] = {}
    max_rev = 0
    for line in acks:
        _, _kind, key, gen, rev = line.split()
        acked[key] = max(acked.get(key, 0), int(gen))
        max_rev = max(max_rev, int(rev))
    assert revision >= max_rev
    for key in [*COUNTERS, PA]:
        floor = max(acked.get(key, 0), before.get(key, 0))
        now = after.get(key, 0)
        # nothing acknowledged is lost; at most the one write in flight landed on top
        assert floor <= now <= floor + 1, (key, floor, now)
    assert after.get(PA) == after.get(PB), "a two-key transaction was torn"
    return len(acks)


def test_random_kills_lose_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("SPDKVIRT_CRASH_SEED", "0")) or random.randrange(1 << 30))
    directory = tmp_path / "store"
    state: dict[str, int] = {}
    revision = 1
    total = 0
    rounds: list[tuple[str, int | None, float | None]] = [("kill", None, rng.uniform(0.0, 0.4)) for _ in range(8)]
    rounds += [("call", rng.randint(1, 400), None) for _ in range(12)]
    rng.shuffle(rounds)
    for i, (_how, crash_at, kill_after) in enumerate(rounds):
        acks = run_writer(directory, rng.randrange(1 << 30) + i, crash_at, kill_after)
        after, new_revision = asyncio.run(read_state(directory))
        assert new_revision >= revision
        total += check_round(state, acks, after, new_revision)
        state, revision = after, new_revision
    assert total > 50, "the writer hardly wrote anything: the test proves nothing"
    names = {p.name for p in directory.iterdir()}
    assert "snapshot.json" in names and "log.jsonl" in names
