"""Linux's own initiators in a qemu guest (the guest kit in ``../shared/guest``), from tests.

The kit boots Debian's kernel under qemu with open-iscsi, nvme-cli and fio; the guest reaches this
machine's loopback as 10.0.2.2. ``SPDKVIRT_GUEST_DIR`` names the kit (default: ``shared/guest``
beside the repository), ``SPDKVIRT_GUEST_IMAGE`` where its image is built (default under
/var/tmp; built once, about a minute, then reused).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def kit() -> Path | None:
    given = os.environ.get("SPDKVIRT_GUEST_DIR")
    path = Path(given) if given else REPO.parent / "shared" / "guest"
    return path if (path / "run-guest.sh").exists() else None


def image_dir() -> Path:
    return Path(os.environ.get("SPDKVIRT_GUEST_IMAGE", "/var/tmp/spdkvirt-guest-image"))


def build_image(guest: Path) -> Path:
    """The guest image, built when missing or out of date (the kit's build is idempotent)."""
    out = image_dir()
    subprocess.run(["bash", str(guest / "build-image.sh"), str(out)], check=True, capture_output=True, timeout=900)
    return out


@dataclass
class GuestRun:
    """One guest's console and verdict."""

    rc: int = -1
    lines: list[str] = field(default_factory=list)

    def value(self, key: str) -> int | None:
        """The last ``KEY=<n>`` the guest printed."""
        found = [m.group(1) for line in self.lines for m in [re.search(rf"\b{key}=(\d+)", line)] if m]
        return int(found[-1]) if found else None

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.lines[-n:])


async def run_guest(
    guest: Path,
    image: Path,
    script: Path,
    params: Mapping[str, str],
    on_line: Callable[[str], Awaitable[None]] | None = None,
    limit: float = 600,
) -> GuestRun:
    """Boot a guest that runs ``script`` with ``params`` (GUEST_<NAME>); ``on_line`` hears each
    console line as it comes (a fault injected at a marker, say)."""
    env = dict(os.environ, VM_TIMEOUT=str(int(limit)), VM_LIB=str(guest / "guest" / "lib.sh"))
    env.setdefault("VM_CPUS", str(max(0, (os.cpu_count() or 1) - 1)))
    env.update({f"GUEST_{k}": v for k, v in params.items()})
    proc = await asyncio.create_subprocess_exec(
        "bash", str(guest / "run-guest.sh"), str(image), str(script),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    run = GuestRun()
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(limit + 30):
            while line := await proc.stdout.readline():
                text = line.decode(errors="replace").rstrip("\r\n")
                run.lines.append(text)
                if on_line is not None:
                    await on_line(text)
            run.rc = await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()  # run-guest.sh stops its own qemu on SIGTERM
            await proc.wait()
    return run
