"""Recording a reference transcript from a real spdk_tgt.

A scenario is a transcript without answers: the same format (tests/data/spdk-reference/README.md)
whose request steps carry no ``response``. Recording sends each step to fresh real targets, as a
replay does, and writes down what came back, so a transcript and the replay that checks the
simulator against it can never disagree about what was asked.

    SPDKVIRT_SPDK_TGT=/path/to/tgt.sh python -m tests.support.recorder SCENARIO.json OUT.json

Request, action (sleep, kill, start, file) and raw steps are supported; polls and async steps are
replayed but not recorded (write them by hand).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .replayer import Conn, Replay
from .targets import REAL_ARGS, REAL_ENV, real_command


class Recording(Replay):
    """A replay that keeps what a real target answered instead of comparing it."""

    def step(self, step: dict[str, Any], label: str) -> None:
        target = step.get("target", "")
        if "request" in step and "async" not in step:
            req = step["request"]
            t0 = time.monotonic()
            reply = self.conn(target).call(req["method"], self.params(req), self.timeout)
            if reply is None:
                raise RuntimeError(f"{label}: no reply within {self.timeout} s")
            step["response"] = self.masked(reply)
            step["ms"] = round((time.monotonic() - t0) * 1000, 2)
            self.result.report(label, [])
        elif "raw" in step:
            step.setdefault("wait_s", 1.0)
            step["responses"], step["closed"] = self.exchange_raw(step)
            self.result.report(label, [])
        else:
            super().step(step, label)


def record(scenario: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run a scenario against fresh real targets; the transcript with every answer filled in."""
    transcript = json.loads(json.dumps(scenario))
    transcript.setdefault("format", 1)
    args = ["-m", "0x1", *REAL_ARGS, "-r", "{socket}"]
    transcript.setdefault("targets", {"a": {"args": args}})
    rec = Recording(transcript, "real", workdir)
    spdk_version = version(rec)
    result = rec.run()
    if result.mismatches:
        raise RuntimeError("\n".join(result.mismatches))
    return {"format": 1, "spdk_version": spdk_version, **{k: v for k, v in transcript.items() if k != "format"}}


def version(rec: Recording) -> Any:
    tp = rec.targets[min(rec.targets)]
    tp.start()
    try:
        c = Conn(tp.socket_path)
        reply = c.call("spdk_get_version", None, 10)
        c.close()
        return (reply or {}).get("result")
    finally:
        tp.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", type=Path)
    ap.add_argument("out", type=Path)
    a = ap.parse_args(argv)
    if real_command() is None:
        print(f"{REAL_ENV} must name a real spdk_tgt", file=sys.stderr)
        return 2
    scenario = json.loads(a.scenario.read_text())
    with tempfile.TemporaryDirectory(prefix="spdk-record-") as tmp:
        transcript = record(scenario, Path(tmp))
    a.out.write_text(json.dumps(transcript, indent=1) + "\n")
    print(f"{a.out}: {len(transcript['steps'])} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
