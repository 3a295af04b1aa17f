"""Writer process of the crash test: acknowledged writes to a file store until it dies.

usage: python crash_writer.py DIR SEED [CRASH_AT]

Prints ``ACK <kind> <key> <generation> <revision>`` (flushed) after each acknowledged write: ``c`` for a
compare-and-swap bump of one counter, ``p`` for a transaction bumping the pair pa/pb together.
With CRASH_AT=N the process dies at the store's Nth file-system call (write, fsync, fdatasync, rename,
ftruncate): just before it, just after it, or, for a write, after writing only part of the data.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from typing import Any

from spdkvirt.store import Compare, Conflict, Put, keys, open_store

COUNTERS = [keys.node(f"c{i}") for i in range(4)]
PA, PB = keys.node("pa"), keys.node("pb")
STORE_OPTIONS = "snapshot_bytes=3000&history=20"


def node(key: str, generation: int) -> dict[str, Any]:
    return {
        "kind": "node",
        "schema_version": 1,
        "node_id": keys.parse(key).parts[0],
        "address": "127.0.0.1",
        "state": "up",
        "generation": generation,
    }


def install_crash(at: int, rng: random.Random) -> None:
    count = 0

    def wrap(name: str) -> None:
        real = getattr(os, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            count += 1
            if count != at:
                return real(*args, **kwargs)
            how = rng.choice(["before", "after", "partial"] if name == "write" else ["before", "after"])
            if how == "partial":
                data = bytes(args[1])
                real(args[0], data[: max(1, len(data) // 2)])
            elif how == "after":
                real(*args, **kwargs)
            os._exit(137)

        setattr(os, name, call)

    for name in ("write", "fsync", "fdatasync", "replace", "ftruncate"):
        wrap(name)


def ack(*fields: object) -> None:
    sys.stdout.write("ACK " + " ".join(map(str, fields)) + "\n")
    sys.stdout.flush()


async def main(directory: str, seed: int, crash_at: int | None) -> None:
    rng = random.Random(seed)
    store = await open_store(f"file://{directory}?{STORE_OPTIONS}")
    print("READY", flush=True)
    if crash_at is not None:
        install_crash(crash_at, random.Random(seed + 1))
    while True:
        if rng.random() < 0.7:
            key = rng.choice(COUNTERS)
            kv = await store.get(key)
            gen = kv.value["generation"] + 1 if kv else 1
            try:
                rev = await store.put(key, node(key, gen), expect=kv.mod_revision if kv else 0)
            except Conflict:
                continue
            ack("c", key, gen, rev)
        else:
            kv = await store.get(PA)
            gen = kv.value["generation"] + 1 if kv else 1
            r = await store.txn(
                [Compare.revision(PA, kv.mod_revision if kv else 0)],
                [Put(PA, node(PA, gen)), Put(PB, node(PB, gen))],
            )
            if r.succeeded:
                ack("p", PA, gen, r.revision)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None))
