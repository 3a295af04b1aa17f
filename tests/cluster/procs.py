"""Child processes of a cluster test, and the clean-up that runs however the test run ends.

``Processes`` starts commands (already wrapped for a namespace by the caller, e.g. with
``Network.wrap``) each in its own session, stdin from /dev/null, output appended to
``<log_dir>/<name>.log``. It signals only the pids it started (and their process groups while they
are not yet reaped), never anything found by name. With ``ip netns exec`` the pid held is the
command's own: ``ip`` sets up the namespace and execs it.

``on_exit(fn)`` registers a clean-up that runs at interpreter exit (atexit) and on SIGTERM/SIGINT; the
signal handler runs every registered clean-up, newest first, then chains to the handler that was there
before (for SIGINT under pytest: KeyboardInterrupt; for SIG_DFL: the default action, re-raised). So an
interrupted run still kills its children and removes its namespaces. Children started from the main
thread also get SIGKILL if the test process dies without running any clean-up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1

# -- clean-up on exit and on signals ---------------------------------------------------------------


class _ExitHooks:
    """The registered clean-ups of this process, and the signal handlers that were there before."""

    def __init__(self) -> None:
        self.cleanups: dict[int, Callable[[], None]] = {}
        self.counter = itertools.count()
        self.owner_pid = os.getpid()
        self.previous: dict[int, Any] = {}
        self.installed = False
        self.signals_installed = False

    def run(self) -> None:
        if os.getpid() != self.owner_pid:
            return  # a forked child inherited the handlers: the clean-ups belong to its parent
        while self.cleanups:
            key = next(reversed(self.cleanups))
            fn = self.cleanups.pop(key)
            try:
                fn()
            except Exception:
                traceback.print_exc(file=sys.stderr)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.run()
        previous = self.previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_IGN:
            return
        else:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def install(self) -> None:
        if not self.installed:
            self.installed = True
            self.owner_pid = os.getpid()
            atexit.register(self.run)
        if self.signals_installed or threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread; atexit still covers a normal exit
        self.signals_installed = True
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self.on_signal)


_hooks = _ExitHooks()


def run_cleanups() -> None:
    """Run every registered clean-up once, newest first; errors are printed, not raised."""
    _hooks.run()


def on_exit(fn: Callable[[], None]) -> Callable[[], None]:
    """Run ``fn`` at exit or on SIGTERM/SIGINT unless the returned function is called first to cancel it."""
    _hooks.install()
    key = next(_hooks.counter)
    _hooks.cleanups[key] = fn

    def cancel() -> None:
        _hooks.cleanups.pop(key, None)

    return cancel


# -- waiting ---------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], T], *, within: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Call ``predicate`` until it returns something truthy (returned); TimeoutError after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {within} s: {what or getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


# -- processes -------------------------------------------------------------------------------------


_libc: list[ctypes.CDLL] = []


def _pdeathsig_hook() -> Callable[[], None] | None:
    """A preexec_fn that makes the child die with its parent thread; only for the main thread (a worker
    thread's children would die with the worker). libc is loaded here, in the parent, not after fork."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if not _libc:
        _libc.append(ctypes.CDLL(None, use_errno=True))
    prctl = _libc[0].prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return hook


@dataclass
class Child:
    """One started process: its name, command, group (e.g. the node), log file and Popen."""

    name: str
    argv: list[str]
    group: str | None
    log: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        """Signal the child's process group (its own session), only while the child is not reaped."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)


class ProcessError(RuntimeError):
    """A process could not be started, or a name is already in use."""


class Processes:
    """The processes one test started; ``stop_all`` (also run on exit and on SIGTERM/SIGINT) ends them all."""

    wait_for = staticmethod(wait_for)

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._children: dict[str, Child] = {}
        self._finished: list[Child] = []
        self._cancel = on_exit(self.stop_all)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        group: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` as ``name`` (a name whose process has ended may be reused). ``env`` is added to
        this process's environment. Output goes to ``log_path(name)`` (appended across restarts)."""
        old = self._children.get(name)
        if old is not None:
            if old.alive():
                raise ProcessError(f"process {name!r} is running (pid {old.pid})")
            self._finished.append(self._children.pop(name))
        log = self.log_path(name)
        full_env = {**os.environ, **env} if env is not None else None
        with open(log, "ab") as out:
            out.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_pdeathsig_hook(),  # noqa: PLW1509 - the hook only calls prctl(2)
            )
        self._children[name] = Child(name, list(argv), group, log, popen)
        return popen

    # lookup

    def child(self, name: str) -> Child:
        try:
            return self._children[name]
        except KeyError:
            raise KeyError(f"no process {name!r} (known: {', '.join(self._children) or 'none'})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._children

    def names(self, group: str | None = None) -> list[str]:
        """Names of the processes started (last start per name), of one group when given."""
        return [n for n, c in self._children.items() if group is None or c.group == group]

    def pid(self, name: str) -> int:
        return self.child(name).pid

    def pids(self) -> list[int]:
        """Every pid ever started here, finished ones included."""
        return [c.pid for c in [*self._finished, *self._children.values()]]

    def alive(self, name: str) -> bool:
        return name in self._children and self._children[name].alive()

    def returncode(self, name: str) -> int | None:
        return self.child(name).popen.poll()

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tail(self, name: str, size: int = 4000) -> str:
        """The last ``size`` characters of the process's log."""
        try:
            return self.log_path(name).read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return ""

    def command_line(self, name: str) -> list[str]:
        """The running command as the kernel shows it (/proc/<pid>/cmdline): after ``ip netns exec``
        has exec'd, the wrapped command itself. Empty when the process is gone."""
        try:
            raw = Path(f"/proc/{self.pid(name)}/cmdline").read_bytes()
        except OSError:
            return []
        return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]

    # signals

    def kill(self, name: str, sig: int = signal.SIGKILL, *, wait: float | None = None) -> None:
        """Send ``sig`` to the process's group. SIGKILL waits until it is reaped; others wait ``wait`` s
        when given (TimeoutError if it is still running then)."""
        c = self.child(name)
        c.signal_group(sig)
        if sig == signal.SIGKILL and wait is None:
            wait = 10.0
        if wait is not None:
            try:
                c.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{name} (pid {c.pid}) still running {wait} s after signal {sig}") from None

    def stop(self, name: str, *, grace: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``grace`` s, then SIGKILL; returns the exit status."""
        c = self.child(name)
        c.signal_group(signal.SIGTERM)
        try:
            c.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            c.signal_group(signal.SIGKILL)
            c.popen.wait(timeout=10)
        return c.popen.returncode

    def kill_group(self, group: str, sig: int = signal.SIGKILL) -> list[str]:
        """Signal every running process of ``group`` (SIGKILL: and reap them); returns their names."""
        hit = [c for c in self._children.values() if c.group == group and c.alive()]
        for c in hit:
            c.signal_group(sig)
        if sig == signal.SIGKILL:
            for c in hit:
                c.popen.wait(timeout=10)
        return [c.name for c in hit]

    def stop_all(self, *, grace: float = 5.0) -> None:
        """SIGTERM every running process at once, SIGKILL what is left after ``grace`` s, reap all."""
        running = [c for c in self._children.values() if c.alive()]
        for c in running:
            c.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for c in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        for c in running:
            c.signal_group(signal.SIGKILL)
        for c in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.popen.wait(timeout=10)

    def close(self) -> None:
        """``stop_all`` and forget the exit hook."""
        self.stop_all()
        self._cancel()
