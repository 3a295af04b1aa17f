"""Ansible stdout callback of the module tests: one JSON line per task result, then one with the stats.

``{"host": ..., "task": ..., "result": {...}}`` for each result (ok, changed, failed, skipped,
unreachable alike; the result as the module returned it, with ``failed``/``unreachable`` set), and
``{"stats": {host: {"changed": n, "failures": n, ...}}}`` at the end.
"""

from __future__ import annotations

import json
from typing import Any

from ansible.plugins.callback import CallbackBase  # type: ignore[import-untyped]

DOCUMENTATION = """
name: modules_record
type: stdout
short_description: JSON lines of task results, for tests
description: One JSON line per task result, then the stats.
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "modules_record"

    def _emit(self, result: Any, **flags: bool) -> None:
        body = dict(result._result)
        body.update(flags)
        line = {"host": result._host.get_name(), "task": result._task.get_name(), "result": body}
        self._display.display(json.dumps(line, default=str), screen_only=True)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._emit(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._emit(result, failed=True)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._emit(result, skipped=True)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._emit(result, unreachable=True)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._display.display(json.dumps({"stats": summary}), screen_only=True)
