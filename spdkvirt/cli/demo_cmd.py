"""``spdkvirt demo``: the whole story on a local cluster of three simulated nodes, in a few seconds.

A mirrored volume is created and exported over NVMe/TCP through the admin API; one of its devices
fails (the simulator's ``sim_bdev_fail``: the drive is pulled); the master quiesces the volume in
an epoch that every affected node acknowledges, remaps the lost leg to another device, and the
volume rebuilds onto it while the demo draws the owner's reported progress; then everything is
removed and the cluster stopped. It runs in this process (the simulators are processes of its
own, and only they are ever signalled); logs go to ``DIR/demo.log``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from spdkvirt.cli.output import progress_bar
from spdkvirt.cli.sizes import format_size

if TYPE_CHECKING:
    from spdkvirt.api.client import ApiClient
    from spdkvirt.local import LocalCluster

VOLUME = "demo1"
VOLUME_SIZE = 256 << 20
DEVICE_SIZE = 1 << 30
STEP_DEADLINE = 30.0
LOG_FILE = "demo.log"


class DemoFailed(Exception):
    """A step of the story did not happen within its deadline."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="the story end to end on a local 3-node cluster",
        description="Create a mirrored volume, export it, fail a device, watch the epoch, the remap and the "
        "rebuild, clean up: on three simulated nodes in this process.",
    )  # fmt: skip
    p.add_argument("--workdir", metavar="DIR", default=argparse.SUPPRESS, help="work directory (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (store, logs) afterwards")
    p.add_argument("--rpc-poll-ms", type=float, default=4.0, help="simulator RPC poller period (real SPDK: ~4 ms)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    given = getattr(args, "workdir", None)
    workdir = Path(given) if given else Path(tempfile.mkdtemp(prefix="spdkvirt-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(workdir / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    ok = False
    try:
        asyncio.run(Story(workdir, args.rpc_poll_ms, sys.stdout).run())
        ok = True
    except Exception as exc:  # one clear line, no traceback
        print(f"\ndemo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"logs: {workdir}", file=sys.stderr)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    if ok and not args.keep and not given:
        shutil.rmtree(workdir, ignore_errors=True)
    elif ok:
        print(f"kept {workdir}: spdkvirt store dump --store file://{workdir.resolve() / 'db'}")
    return 0 if ok else 1


def legs_text(vol: Mapping[str, Any]) -> str:
    return ", ".join(f"{x['node']}/{x['device']} ({x['state']})" for x in vol["legs"])


def ms(value: float) -> str:
    return f"{value:.1f} ms"


class Story:
    """The demo's steps, against a :class:`~spdkvirt.local.LocalCluster` and its API."""

    def __init__(self, workdir: Path, poll_ms: float, out: TextIO) -> None:
        self.workdir = workdir
        self.poll_ms = poll_ms
        self.out = out
        self.tty = out.isatty()
        self.t0 = time.monotonic()

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    async def until(self, what: str, check: Callable[[], Any], every: float = 0.05) -> Any:
        """Poll ``check`` (a coroutine function) until it returns something true."""
        end = time.monotonic() + STEP_DEADLINE
        while True:
            found = await check()
            if found:
                return found
            if time.monotonic() > end:
                raise DemoFailed(f"{what}: not within {STEP_DEADLINE:g} s")
            await asyncio.sleep(every)

    async def run(self) -> None:
        from spdkvirt.api.client import ApiClient
        from spdkvirt.local import LocalCluster

        self.say(f"spdkvirt demo: 3 nodes, each a simulated SPDK target (RPC poller {self.poll_ms:g} ms) with "
                 f"2 devices of {format_size(DEVICE_SIZE)}, in {self.workdir}")  # fmt: skip
        cluster = LocalCluster(self.workdir, nodes=3, devices=2, device_size=DEVICE_SIZE, poll_ms=self.poll_ms,
                               resync_interval=0.25)  # fmt: skip
        async with cluster:
            master = await cluster.wait_ready(STEP_DEADLINE)
            holder = master.cfg.holder
            self.say(f"cluster up in {time.monotonic() - self.t0:.1f} s: master {holder!r} leads, "
                     f"admin API on {cluster.api_socket}")  # fmt: skip
            async with ApiClient(str(cluster.api_socket)) as api:
                await self.story(cluster, api)
        self.say(f"\ndone in {time.monotonic() - self.t0:.1f} s")

    async def story(self, cluster: LocalCluster, api: ApiClient) -> None:
        from spdkvirt.store import keys

        # 1. a mirrored volume
        self.say(f"\n1. create a mirrored volume: volume_create {VOLUME} size {format_size(VOLUME_SIZE)} redundancy 2")
        t = time.monotonic()
        vol = await api.call("volume_create", {"name": VOLUME, "size_bytes": VOLUME_SIZE, "redundancy": 2})
        self.say(f"   {vol['name']}: {vol['state']}, {vol['raid_level']} assembled on {vol['owner_node']} "
                 f"[{ms((time.monotonic() - t) * 1e3)}]")  # fmt: skip
        self.say(f"   legs: {legs_text(vol)}")

        # 2. NVMe/TCP export
        self.say("\n2. export it over NVMe/TCP: export_create protocol nvmf")
        t = time.monotonic()
        exp = await api.call("export_create", {"volume": VOLUME, "protocol": "nvmf", "allow_any_host": True})
        listeners = ", ".join(f"TCP {x['traddr']}:{x['trsvcid']}" for x in exp["nvmf"]["listeners"])
        self.say(f"   subsystem {exp['nvmf']['subnqn']}")
        self.say(f"   listener  {listeners} on {exp['node']} [{ms((time.monotonic() - t) * 1e3)}]")

        # 3. a device of the volume fails
        victim = next((x for x in vol["legs"] if x["node"] != vol["owner_node"]), vol["legs"][-1])
        node, device = victim["node"], victim["device"]
        before = {e["number"] for e in await api.call("epoch_list", {"limit": 1000})}
        self.say(f"\n3. device {device} on {node} (leg {victim['leg_id']}) fails: the drive is pulled "
                 f"(sim_bdev_fail on {node}'s SPDK)")  # fmt: skip
        await self.pull(cluster.node(node).socket, device)
        failed_at = time.monotonic()

        async def device_failed() -> Any:
            devs = await api.call("device_list", {"node": node})
            return next((d for d in devs if d["device_id"] == device and d["state"] == "failed"), None)

        await self.until(f"{device} reported failed", device_failed, 0.02)
        self.say(f"   {node}'s agent reports {device} failed after {ms((time.monotonic() - failed_at) * 1e3)}")

        # 4. the quiesce epoch
        async def epoch_done() -> Any:
            for e in await api.call("epoch_list", {"limit": 1000}):
                if e["number"] not in before and VOLUME in e["affected_volumes"] and e["phase"] == "done":
                    return e
            return None

        summary = await self.until("the epoch", epoch_done, 0.02)
        assert cluster.store is not None
        kv = await cluster.store.get(keys.epoch(summary["number"]))
        record = kv.value if kv is not None else summary
        self.show_epoch(record)

        # 5. the remap
        after = await api.call("volume_get", {"name": VOLUME})
        old = {x["leg_id"]: x for x in vol["legs"]}
        new = {x["leg_id"]: x for x in after["legs"]}
        self.say("\n5. remap")
        self.say("   old legs: " + legs_text(vol))
        self.say("   new legs: " + legs_text(after))
        for leg_id in sorted(set(old) - set(new)):
            self.say(f"   dropped {leg_id} on {old[leg_id]['node']}/{old[leg_id]['device']}")
        for leg_id in sorted(set(new) - set(old)):
            self.say(f"   added   {leg_id} on {new[leg_id]['node']}/{new[leg_id]['device']}: "
                     f"to be rebuilt from the in-sync leg")  # fmt: skip

        # 6. the rebuild
        self.say(f"\n6. rebuild ({after['owner_node']} copies the data onto the new leg; progress as it reports it)")
        await self.watch_rebuild(api)

        # 7. clean up
        self.say("\n7. clean up")
        await api.call("export_delete", {"volume": VOLUME, "export_id": exp["export_id"]})
        self.say(f"   export {exp['export_id']} deleted")
        await api.call("volume_delete", {"name": VOLUME})

        async def gone() -> bool:
            return not await api.call("volume_list")

        await self.until("the volume deleted", gone)
        self.say(f"   volume {VOLUME} deleted; stopping the cluster")

    async def pull(self, socket: str, device: str) -> None:
        from spdkvirt.spdk.client import SpdkClient
        from spdkvirt.spdk.methods import SimFaults

        async with SpdkClient(socket) as client:
            await SimFaults(client).sim_bdev_fail(device)

    def show_epoch(self, rec: Mapping[str, Any]) -> None:
        nodes = list(rec["affected_nodes"])
        self.say(f"\n4. quiesce epoch {rec['number']} ({rec['reason']}): volumes {', '.join(rec['affected_volumes'])}"
                 f" on nodes {', '.join(nodes)}")  # fmt: skip
        if rec.get("detail"):
            self.say(f"   {rec['detail']}")
        timings: Mapping[str, float] = rec.get("timings", {})
        ack_ms: Mapping[str, Mapping[str, float]] = rec.get("ack_ms", {})
        head = f"   {'phase':<11}{'took':>10}" + "".join(f"{'ack ' + n:>12}" for n in nodes)
        self.say(head)
        for phase in ("quiescing", "remapping", "resuming"):
            if phase not in timings:
                continue
            acks = "".join(f"{ms(ack_ms[n][phase]) if phase in ack_ms.get(n, {}) else '-':>12}" for n in nodes)
            self.say(f"   {phase:<11}{ms(timings[phase]):>10}{acks}")
        self.say("   (took: the phase at the master; ack: each node's acknowledgement, from the start of the phase)")
        acked = ", ".join(f"{n}: {p}" for n, p in sorted(rec.get("acks", {}).items()))
        self.say(f"   acknowledged (last phase per node): {acked or '-'}; phase now {rec['phase']}")

    async def watch_rebuild(self, api: ApiClient) -> None:
        started = time.monotonic()
        shown = -1.0
        end = started + STEP_DEADLINE
        while True:
            vol = await api.call("volume_get", {"name": VOLUME})
            done = vol["state"] == "healthy" and all(x["state"] == "in_sync" for x in vol["legs"])
            pct = 100.0 if done else float(vol.get("rebuild_percent", 0.0))
            if pct != shown:
                bar = f"   {vol['state'] if not done else 'rebuilt':<10} {progress_bar(pct)}"
                if self.tty:
                    print("\r" + bar, end="", file=self.out, flush=True)
                else:
                    self.say(bar)
                shown = pct
            if done:
                if self.tty:
                    self.say()
                self.say(f"   {VOLUME} is healthy again after {time.monotonic() - started:.1f} s: {legs_text(vol)}")
                return
            if time.monotonic() > end:
                raise DemoFailed(f"rebuild of {VOLUME}: not done within {STEP_DEADLINE:g} s")
            await asyncio.sleep(0.05)
