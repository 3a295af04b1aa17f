"""A host that writes versioned blocks to one volume's export and prints every acknowledged write.

    python -m tests.support.writer ADDRESS PORT NQN OFFSET [--real]

Block OFFSET gets version 1, 2, 3, ... (8 bytes, big-endian, then the wall-clock time of the
write), one at a time; each write acknowledged OK prints ``ack <version> <time.time()>``, each
other outcome ``err <version> <status>``. Runs until killed. Tests run it inside a node's network
namespace, to write to that node while it is cut off from everything else. ``--real``: NVMe/TCP
(a real SPDK); otherwise the simulator's own wire.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time
import uuid

from spdkvirt.spdk.sim import nvme_host
from tests.support import nvmetcp

HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:spdkvirt-tests-writer"
BLOCK = 4096


def block(version: int, at: float) -> bytes:
    return struct.pack(">Qd", version, at).ljust(BLOCK, b"\x5a")


def version_of(data: bytes) -> int:
    return int(struct.unpack(">Q", data[:8])[0])


async def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("address")
    p.add_argument("port")
    p.add_argument("nqn")
    p.add_argument("offset", type=int)
    p.add_argument("--real", action="store_true")
    args = p.parse_args(argv)
    hostid = str(uuid.uuid5(uuid.NAMESPACE_URL, HOSTNQN))
    if args.real:
        conn: nvme_host.HostConnection | nvmetcp.HostConnection = await nvmetcp.connect(
            args.address, args.port, args.nqn, HOSTNQN, hostid
        )
    else:
        conn = await nvme_host.connect(args.address, args.port, args.nqn, HOSTNQN, hostid, limit_s=5.0)
    print("connected", flush=True)
    version = 0
    while True:
        version += 1
        status = await conn.write(1, args.offset, block(version, time.time()))
        if status == "ok":
            print(f"ack {version} {time.time():.6f}", flush=True)
        else:
            print(f"err {version} {status}", flush=True)
        await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
