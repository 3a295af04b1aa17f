"""Ansible callback plugin for the playbook test: writes what a run did to a JSON file.

Enabled with ``ANSIBLE_CALLBACK_PLUGINS=<this directory>`` and
``ANSIBLE_CALLBACKS_ENABLED=playbook_record``; the file is ``$SPDKVIRT_PLAYBOOK_RECORD``. It holds
``stats`` (the PLAY RECAP counts per host), ``changed`` and ``failed`` (host, task and what the module
said) and ``tasks`` (name and seconds of every task), while the usual output goes to the terminal.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "playbook_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.changed: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self._task_started = 0.0

    def _close_task(self) -> None:
        if self.tasks and "seconds" not in self.tasks[-1]:
            self.tasks[-1]["seconds"] = round(time.monotonic() - self._task_started, 3)

    def _start(self, name: str) -> None:
        self._close_task()
        self._task_started = time.monotonic()
        self.tasks.append({"name": name})

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._start(task.get_name())

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._start("handler: " + task.get_name())

    @staticmethod
    def _entry(result: Any) -> dict[str, Any]:
        res = result._result
        return {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "msg": str(res.get("msg", ""))[:2000],
            "stdout": str(res.get("stdout", ""))[-2000:],
            "stderr": str(res.get("stderr", ""))[-2000:],
        }

    def v2_runner_on_ok(self, result: Any) -> None:
        if result._result.get("changed"):
            self.changed.append(self._entry(result))

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if not ignore_errors:
            self.failed.append(self._entry(result))

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self.failed.append(self._entry(result))

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._close_task()
        path = os.environ.get("SPDKVIRT_PLAYBOOK_RECORD")
        if not path:
            return
        record = {
            "stats": {h: stats.summarize(h) for h in sorted(stats.processed)},
            "changed": self.changed,
            "failed": self.failed,
            "tasks": self.tasks,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, default=str)
