"""Running ansible-playbook for the playbook test, and reading what it did.

``run_playbook(hosts, inventory, playbook, extra_vars=...)`` runs the repository's ansible-playbook
with the environment of ``PlaybookHosts.ansible_env`` and the ``playbook_record`` callback
(``tests/ansible/playbook_plugins``), and returns a ``PlaybookRun``: the exit status, the output, and
the record (PLAY RECAP counts per host, the tasks that changed something or failed, task times).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.ansible.playbook_hosts import ANSIBLE_PLAYBOOK, COLLECTION, PlaybookHosts

PLUGINS = Path(__file__).resolve().parent / "playbook_plugins"


@dataclass(frozen=True)
class PlaybookRun:
    """One finished ansible-playbook run."""

    playbook: str
    returncode: int
    output: str
    record: Mapping[str, Any]
    seconds: float

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP per host: ok, changed, failures, unreachable, skipped, rescued, ignored."""
        return {h: dict(s) for h, s in self.record.get("stats", {}).items()}

    def changed(self) -> dict[str, int]:
        return {h: s["changed"] for h, s in self.stats.items()}

    def changed_tasks(self) -> list[str]:
        return [f"{c['host']}: {c['task']}" for c in self.record.get("changed", [])]

    @property
    def ok(self) -> bool:
        stats = self.stats
        return (
            self.returncode == 0
            and bool(stats)
            and all(s["failures"] == 0 and s["unreachable"] == 0 for s in stats.values())
        )

    def describe(self) -> str:
        """What to show when an assertion about this run fails."""
        lines = [f"ansible-playbook {self.playbook}: exit {self.returncode} after {self.seconds:.0f} s"]
        lines += [f"  {h}: {s}" for h, s in self.stats.items()]
        for f in self.record.get("failed", []):
            lines.append(f"  FAILED {f['host']}: {f['task']}: {f['msg']}")
            lines += [f"    {x}" for x in (f["stdout"] + "\n" + f["stderr"]).strip().splitlines()[-20:]]
        lines += [f"  changed {t}" for t in self.changed_tasks()]
        if not self.record:
            lines.append(self.output[-6000:])
        return "\n".join(lines)


def run_playbook(
    hosts: PlaybookHosts,
    inventory: Path,
    playbook: str,
    *,
    extra_vars: Mapping[str, Any] | None = None,
    timeout: float = 600.0,
) -> PlaybookRun:
    """Run ``ansible/<playbook>`` (or an absolute path) against ``inventory``; the output is kept in the
    work directory too."""
    stamp = f"{time.time_ns()}"
    record_path = hosts.workdir / f"record-{stamp}.json"
    env = hosts.ansible_env()
    env.update(
        {
            "ANSIBLE_CALLBACK_PLUGINS": str(PLUGINS),
            "ANSIBLE_CALLBACKS_ENABLED": "playbook_record",
            "SPDKVIRT_PLAYBOOK_RECORD": str(record_path),
        }
    )
    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(COLLECTION / playbook)]
    if extra_vars:
        argv += ["--extra-vars", json.dumps(dict(extra_vars))]
    started = time.monotonic()
    proc = subprocess.run(
        argv,
        env=env,
        cwd=hosts.workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    (hosts.workdir / f"output-{stamp}.log").write_text(output)
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    return PlaybookRun(playbook, proc.returncode, output, record, seconds)
