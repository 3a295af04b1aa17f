"""`spdkvirt demo`: a mirrored volume built through the SPDK adapter, a device failure, a rebuild,
and a target restart that brings everything back from the device files.

It starts its own simulator in a work directory and signals no other process. Every object it
makes is named `demo...` and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.methods import ListenAddress, Namespace, SimFaults, Spdk

DEVICE_MIB = 64
VOLUME_MIB = 32
NQN = "nqn.2016-06.io.spdk:demo-vol0"


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="build a mirrored volume, fail a device, rebuild, restart the target")
    p.add_argument("--workdir", type=Path, help="device files and socket (default: a temp dir)")
    p.add_argument("--rpc-poll-ms", type=float, default=4.0, help="simulator RPC poller period (real SPDK: ~4 ms)")
    p.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spdkvirt-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sim = Simulator(workdir, args.rpc_poll_ms)
    try:
        asyncio.run(story(sim, make_disks(workdir, 3)))
    except Exception as exc:  # one clear line, no traceback
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"simulator log: {sim.log}", file=sys.stderr)
        return 1
    finally:
        sim.stop()
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


class Simulator:
    """A spdkvirt-sim process of the demo's own; only it is ever signalled."""

    def __init__(self, workdir: Path, poll_ms: float) -> None:
        self.socket = str(workdir / "spdk.sock")
        self.log = str(workdir / "spdk.log")
        self.poll_ms = poll_ms
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "spdkvirt.spdk.sim.main", "-r", self.socket, "--rpc-poll-ms", str(self.poll_ms)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)

    def stop(self) -> None:
        self.kill()


def say(text: str) -> None:
    print(text, flush=True)


async def connect(sim: Simulator) -> SpdkClient:
    deadline = time.monotonic() + 30
    while True:
        client = SpdkClient(sim.socket, timeout=30, connect_timeout=1)
        try:
            await Spdk(client).spdk_get_version()
            return client
        except Exception:
            await client.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def raid_state(spdk: Spdk) -> dict[str, Any]:
    [raid] = [r for r in await spdk.bdev_raid_get_bdevs("all") if r["name"] == "demo-vol0"]
    return raid


def describe(raid: dict[str, Any]) -> str:
    members = ", ".join(m["name"] or "(empty)" for m in raid["base_bdevs_list"])
    return (
        f"raid1 demo-vol0: {raid['state']}, {raid['num_base_bdevs_operational']}/{raid['num_base_bdevs']} "
        f"members operational [{members}]"
    )


async def story(sim: Simulator, files: list[str]) -> None:
    sim.start()
    client = await connect(sim)
    spdk = Spdk(client)
    version = await spdk.spdk_get_version()
    say(f"target: {version['version']} on {sim.socket}")

    t0 = time.monotonic()
    # independent calls go out together: one poller tick for all three devices
    await asyncio.gather(*(spdk.bdev_aio_create(f, f"demo-d{i}", block_size=512) for i, f in enumerate(files)))
    devices = {b["name"]: b["uuid"] for b in await spdk.bdev_get_bdevs() if b["name"].startswith("demo-d")}
    say(f"devices: {', '.join(f'{n} ({u})' for n, u in sorted(devices.items()))}")
    await spdk.bdev_raid_create("demo-vol0", "raid1", ["demo-d0", "demo-d1"], superblock=True)
    lvs = await spdk.bdev_lvol_create_lvstore("demo-vol0", "demo-lvs")
    lvol = await spdk.bdev_lvol_create("data", VOLUME_MIB, lvs_name="demo-lvs", thin_provision=True)
    await spdk.nvmf_create_transport("TCP")
    await spdk.nvmf_create_subsystem(NQN, allow_any_host=True, ana_reporting=True)
    await spdk.nvmf_subsystem_add_ns(NQN, Namespace(bdev_name=lvol))
    port = free_port()
    await spdk.nvmf_subsystem_add_listener(
        NQN, ListenAddress(trtype="TCP", adrfam="IPv4", traddr="127.0.0.1", trsvcid=str(port))
    )
    say(f"volume: lvol demo-lvs/data ({lvol}) on lvstore {lvs}, {VOLUME_MIB} MiB thin")
    say(f"export: {NQN} at 127.0.0.1:{port} (NVMe/TCP, ANA reporting)")
    say(describe(await raid_state(spdk)) + f"  [built in {(time.monotonic() - t0) * 1000:.0f} ms]")

    say("\n-- device demo-d1 fails")
    await SimFaults(client).sim_bdev_fail("demo-d1")
    say(describe(await raid_state(spdk)))

    say("\n-- rebuild onto the spare demo-d2")
    await spdk.bdev_raid_set_options(process_max_bandwidth_mb_sec=20)
    await spdk.bdev_raid_add_base_bdev("demo-vol0", "demo-d2")
    t0 = time.monotonic()
    while True:
        raid = await raid_state(spdk)
        process = raid.get("process")
        if process is None and raid["num_base_bdevs_operational"] == raid["num_base_bdevs"]:
            break
        if process is not None:
            pct = float(process["progress"]["percent"])
            bar = "#" * int(pct / 5)
            print(f"\r   rebuilding {process['target']}: [{bar:<20}] {pct:5.1f}%", end="", flush=True)
        await asyncio.sleep(0.1)
    print(f"\r   rebuilt in {time.monotonic() - t0:.1f} s" + " " * 40, flush=True)
    say(describe(raid))

    say("\n-- the target is killed (SIGKILL) and restarted: SPDK keeps nothing but the device files")
    await client.close()
    sim.kill()
    sim.start()
    client = await connect(sim)
    spdk = Spdk(client)
    say(f"   after restart: {len(await spdk.bdev_get_bdevs())} bdevs")
    await asyncio.gather(
        *(spdk.bdev_aio_create(files[i], f"demo-d{i}", block_size=512, uuid=devices[f"demo-d{i}"]) for i in (0, 2))
    )
    say("   re-attached demo-d0 and demo-d2 with their uuids: " + describe(await raid_state(spdk)))
    [back] = await spdk.bdev_get_bdevs(name="demo-lvs/data")
    say(f"   lvol demo-lvs/data is back as {back['name']} (same uuid: {back['name'] == lvol})")

    say("\n-- clean up")
    await spdk.bdev_lvol_delete_lvstore(lvs_name="demo-lvs")
    await spdk.bdev_raid_delete("demo-vol0", clear_sb=True)
    await asyncio.gather(spdk.bdev_aio_delete("demo-d0"), spdk.bdev_aio_delete("demo-d2"))
    await client.close()
    say("done")


def make_disks(workdir: Path, count: int) -> list[str]:
    """Sparse, zero-filled device files (a file of zeros carries no raid or lvstore metadata)."""
    files = []
    for i in range(count):
        path = workdir / f"demo-disk{i}.img"
        with open(path, "wb") as f:
            f.truncate(DEVICE_MIB * 1024 * 1024)
        files.append(str(path))
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
