"""Fault-schedule benchmark: many seeded schedules, each judged end to end.

Each schedule starts a 3-node local cluster (simulators, the embedded store), writes versioned
blocks to 4 mirrored, exported volumes while its faults run (pulled devices, SPDK kills under a
live agent, agent kills, controller kills, slow nodes), lets it settle, reads every block back and
checks that no acknowledged write is lost, that no volume accepted writes on two nodes in one probe
round, and that every volume converged (online, or failed). A failing seed is printed with its
faults and reproduces with ``--seed``. Ends with one line:
``schedules=… faults=… at_steps=… acked_writes=… lost_writes=… double_served=… unconverged=… errors=…``
(at_steps: controller kills that came at the protocol step they were scheduled for; errors:
schedules the harness could not carry out, such as a target that did not start again).
Run one at a time on a machine: local clusters take free ports as they start, and two running at
once can take a port the other's killed target is about to listen on again.

    .venv/bin/python bench/nemesis.py [--schedules 500] [--seed 1] [--faults 3] [--span 6] [--spdk-tgt CMD]

``--spdk-tgt CMD`` runs real spdk_tgt processes (started with the harness's arguments) and writes
through NVMe/TCP; pulled devices are then ``bdev_aio_delete`` and nodes are not slowed.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.nemesis.run import run_schedule
from tests.support.targets import REAL_ARGS


async def run(args: argparse.Namespace) -> None:
    counts = ("schedules", "faults", "at_steps", "acked_writes", "lost_writes", "double_served", "unconverged")
    totals = dict.fromkeys(counts, 0)
    started = time.monotonic()
    errors = 0
    target = (*shlex.split(args.spdk_tgt), *REAL_ARGS) if args.spdk_tgt else ()
    for seed in range(args.seed, args.seed + args.schedules):
        with tempfile.TemporaryDirectory(prefix="nemesis-") as d:
            try:
                r = await run_schedule(Path(d), seed, faults=args.faults, span=args.span, target=target)
            except Exception as e:  # the harness could not carry a fault out: say so, go on
                errors += 1
                print(f"seed {seed}: not run to the end: {type(e).__name__}: {e}", flush=True)
                continue
        v = r.verdict
        totals["schedules"] += 1
        totals["faults"] += len(r.faults)
        totals["at_steps"] += r.at_steps
        totals["acked_writes"] += v.acked_writes
        totals["lost_writes"] += len(v.lost)
        totals["double_served"] += len(v.double_served)
        totals["unconverged"] += len(v.unconverged)
        if not v.ok or args.verbose:
            print(r.show(), flush=True)
        elif totals["schedules"] % 10 == 0:
            print(f"{totals['schedules']} schedules in {time.monotonic() - started:.0f} s: {totals}", flush=True)
    print(" ".join(f"{k}={v}" for k, v in {**totals, "errors": errors}.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--schedules", type=int, default=500, help="schedules to run (seeds from --seed on)")
    parser.add_argument("--seed", type=int, default=1, help="first seed")
    parser.add_argument("--faults", type=int, default=3, help="faults per schedule")
    parser.add_argument("--span", type=float, default=6.0, help="seconds over which a schedule's faults start")
    parser.add_argument("--spdk-tgt", metavar="CMD", help="command that starts a real spdk_tgt (default: simulators)")
    parser.add_argument("--verbose", action="store_true", help="print every schedule, not only failing ones")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
