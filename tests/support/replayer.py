"""Replaying a reference transcript against live targets (simulators or real spdk_tgt).

Every step is sent to a fresh target of its scenario and the reply compared by the rules in
normalise.py. Kill/start steps restart the same target process; file steps act on the
scenario's scratch directory, which stands for "{dir}" in requests and replies.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .normalise import UuidMap, compare, replace_strings, short, translate
from .targets import TargetProcess, make_target

DIR = "{dir}"


class Conn:
    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = ""
        self.next_id = 1000

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def read(self, deadline: float) -> Any:
        """The next JSON value; None at the deadline; EOFError when the peer closed."""
        dec = json.JSONDecoder()
        while True:
            s = self.buf.lstrip()
            if s:
                try:
                    obj, end = dec.raw_decode(s)
                    self.buf = s[end:]
                    return obj
                except ValueError:
                    pass
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                return None
            except OSError as exc:
                raise EOFError(str(exc)) from exc
            if not data:
                raise EOFError("closed")
            self.buf += data.decode(errors="replace")

    def send_request(self, method: str, params: Any) -> int:
        self.next_id += 1
        req: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": self.next_id}
        if params is not None:
            req["params"] = params
        self.send(json.dumps(req))
        return self.next_id

    def wait_reply(self, req_id: int, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            obj = self.read(deadline)
            if obj is None:
                return None
            if isinstance(obj, dict) and obj.get("id") == req_id:
                return {k: v for k, v in obj.items() if k not in ("jsonrpc", "id")}

    def call(self, method: str, params: Any, timeout: float) -> dict[str, Any] | None:
        return self.wait_reply(self.send_request(method, params), timeout)


@dataclass
class Result:
    steps: int = 0
    mismatches: list[str] = field(default_factory=list)

    def report(self, label: str, diffs: list[str]) -> None:
        self.steps += 1
        if diffs:
            self.mismatches.append(label + ": " + "; ".join(diffs[:6]))


class Replay:
    """One transcript against one set of targets started here."""

    def __init__(self, transcript: dict[str, Any], kind: str, workdir: Path, timeout: float = 30.0) -> None:
        self.t = transcript
        self.kind = kind
        self.timeout = timeout
        self.workdir = workdir
        names = sorted(set(transcript.get("targets", {})) | {s["target"] for s in transcript["steps"] if "target" in s})
        self.targets: dict[str, TargetProcess] = {n: make_target(kind, workdir, n) for n in names}
        self.conns: dict[str, Conn] = {}
        self.asyncs: dict[str, tuple[Conn, int, str]] = {}
        self.umap = UuidMap()
        self.result = Result()
        self.dir = ""

    # ---- running --------------------------------------------------------------------------
    def run(self) -> Result:
        self.dir = tempfile.mkdtemp(prefix="spdk-replay-", dir=self.workdir)
        try:
            for tp in self.targets.values():
                tp.start()
            for i, step in enumerate(self.t["steps"]):
                label = f"[{self.t.get('scenario')} #{i}] {title(step)}"
                try:
                    self.step(step, label)
                except (OSError, EOFError, RuntimeError) as exc:
                    self.result.report(label, [f"{type(exc).__name__}: {exc}"])
                    if step.get("target"):
                        self.drop(step["target"])
        finally:
            for c in self.conns.values():
                c.close()
            for c, _, _ in self.asyncs.values():
                c.close()
            for tp in self.targets.values():
                tp.kill()
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.result

    def conn(self, target: str) -> Conn:
        c = self.conns.get(target)
        if c is None:
            c = self.conns[target] = Conn(self.targets[target].socket_path, self.timeout)
        return c

    def drop(self, target: str) -> None:
        c = self.conns.pop(target, None)
        if c is not None:
            c.close()

    def params(self, req: dict[str, Any]) -> Any:
        if "params" not in req:
            return None
        return replace_strings(translate(req["params"], self.umap), DIR, self.dir)

    def masked(self, reply: Any) -> Any:
        return replace_strings(reply, self.dir, DIR)

    def step(self, step: dict[str, Any], label: str) -> None:
        action = step.get("action")
        target = step.get("target", "")
        if action == "sleep":
            time.sleep(step["seconds"])
        elif action == "kill":
            self.drop(target)
            self.targets[target].kill(getattr(signal, "SIG" + step.get("signal", "KILL")))
        elif action == "start":
            self.targets[target].start()
        elif action == "file":
            file_action(step["op"], step["path"], step.get("size"), self.dir)
        elif "raw" in step:
            return self.raw(step, label)
        elif "poll" in step:
            return self.poll(step, label)
        elif "await" in step:
            return self.await_(step, label)
        elif "async" in step:
            c = Conn(self.targets[target].socket_path, self.timeout)
            req = step["request"]
            self.asyncs[step["async"]] = (c, c.send_request(req["method"], self.params(req)), req["method"])
        else:
            req = step["request"]
            reply = self.conn(target).call(req["method"], self.params(req), self.timeout)
            if reply is None:
                raise RuntimeError(f"no reply within {self.timeout} s")
            diffs = compare(req["method"], step["response"], self.masked(reply), self.umap, commit=True)
            return self.result.report(label, diffs)
        return self.result.report(label, [])

    def exchange_raw(self, step: dict[str, Any]) -> tuple[list[Any], bool]:
        """Write a raw step's text on a new connection: the replies within its wait, and whether
        the target closed the connection."""
        c = Conn(self.targets[step["target"]].socket_path, 5)
        c.send(step["raw"].replace(DIR, self.dir))
        deadline = time.monotonic() + step.get("wait_s", 1.0)
        replies: list[Any] = []
        closed = False
        try:
            while (obj := c.read(deadline)) is not None:
                replies.append(self.masked(obj))
        except EOFError:
            closed = True
        c.close()
        return replies, closed

    def raw(self, step: dict[str, Any], label: str) -> None:
        replies, closed = self.exchange_raw(step)
        diffs = [] if closed == step.get("closed", False) else [f"closed: recorded {step.get('closed')}"]
        diffs += compare(None, {"raw": step.get("responses", [])}, {"raw": replies}, self.umap)
        self.result.report(label, diffs)

    def await_(self, step: dict[str, Any], label: str) -> None:
        c, req_id, method = self.asyncs[step["await"]]
        if "pending" in step:
            obj = c.read(time.monotonic() + 0.05)
            if obj is not None:
                c.buf = json.dumps(obj) + c.buf
            pending = obj is None
            return self.result.report(label, [] if pending == step["pending"] else [f"pending {pending}"])
        reply = c.wait_reply(req_id, self.timeout)
        c.close()
        del self.asyncs[step["await"]]
        if reply is None:
            raise RuntimeError("no reply to the async request")
        self.result.report(label, compare(method, step["response"], self.masked(reply), self.umap, commit=True))

    def poll(self, step: dict[str, Any], label: str) -> None:
        poll, also = step["poll"], step.get("also", [])
        final = step["samples"][-1]
        limit = max(5.0, 2 * step.get("duration_ms", 0) / 1000)
        observe = step.get("observe", False)
        min_polls = step.get("polls", 1) if observe else step.get("min_polls", 1)
        t0 = time.monotonic()
        polls = 0
        while True:
            polls += 1
            c = self.conn(step["target"])
            reply = self.masked(c.call(poll["method"], self.params(poll), self.timeout))
            also_replies = [self.masked(c.call(a["method"], self.params(a), self.timeout)) for a in also]
            trial = self.umap.clone()
            diffs = compare(poll["method"], final["response"], reply, trial)
            for a, rec, act in zip(also, final.get("also", []), also_replies, strict=False):
                diffs += [f"also {a['method']}: {d}" for d in compare(a["method"], rec, act, trial)]
            if observe and diffs:
                break
            if not diffs and polls >= min_polls:
                self.umap.adopt(trial)
                break
            if time.monotonic() - t0 > limit:
                break
            time.sleep(step.get("interval_ms", 100) / 1000)
        self.result.report(label, diffs)


def file_action(op: str, path: str, size: int | None, real_dir: str) -> None:
    assert path.startswith(DIR + "/") and ".." not in path.split("/"), path
    real = os.path.join(real_dir, path[len(DIR) + 1 :])
    if op == "delete":
        os.unlink(real)
    elif op == "create":
        os.makedirs(os.path.dirname(real), exist_ok=True)
        with open(real, "wb") as f:
            f.truncate(size or 0)
    elif op in ("resize", "grow"):
        assert size is not None and (op == "resize" or size >= os.path.getsize(real))
        os.truncate(real, size)
    else:
        raise ValueError(f"unknown file op {op}")


def title(step: dict[str, Any]) -> str:
    if "action" in step:
        return f"{step['action']} {step.get('target', '')} {step.get('op', '')} {step.get('path', '')}".strip()
    if "raw" in step:
        return "raw " + short(step["raw"], 50)
    if "poll" in step:
        return "poll " + step["poll"]["method"]
    if "await" in step:
        return f"await {step['await']}"
    req = step["request"]
    return req["method"] + (" " + short(req.get("params"), 70) if "params" in req else "")
