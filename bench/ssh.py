"""SSH transport benchmark: one SPDK RPC round trip over SSH (forced command, streamlocal) vs a UNIX socket.

Starts a simulator (``spdkvirt-sim``; ``--rpc-poll-ms``, default 0: it answers at once, so the numbers
are the transports' own cost — a real SPDK adds up to one 4-8 ms poller tick to each) and an OpenSSH
server on 127.0.0.1 with its own keys (``tests/support/sshd.py``), then times sequential
``spdk_get_version`` calls through ``SpdkClient`` three ways, each after a warm-up:

  * ``forced``      — ``ssh://...?via=forced`` with a ``restrict,command="socat STDIO UNIX-CONNECT:..."`` key
  * ``streamlocal`` — a ``direct-streamlocal@openssh.com`` channel with an unrestricted key
  * ``local``       — the UNIX socket itself

Ends with one line: ``ssh_forced_p50_ms=… ssh_streamlocal_p50_ms=… local_p50_ms=…``.

    .venv/bin/python bench/ssh.py [--calls 2000] [--rpc-poll-ms 0] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spdkvirt.spdk.client import SpdkClient  # noqa: E402
from spdkvirt.spdk.transport import Transport, UnixTransport  # noqa: E402
from spdkvirt.ssh.connection import close_connections  # noqa: E402
from spdkvirt.ssh.options import SshOptions  # noqa: E402
from spdkvirt.ssh.transport import SshTransport  # noqa: E402
from tests.support.sshd import Sshd, ssh_unavailable_reason  # noqa: E402
from tests.support.targets import make_target  # noqa: E402

WARMUP = 100
METHOD = "spdk_get_version"


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def round_trips(transport: Transport, calls: int) -> tuple[list[float], int]:
    """Sequential call latencies in ms (after the warm-up) and how many connections were opened."""
    async with SpdkClient(transport, timeout=10) as client:
        out = []
        for i in range(WARMUP + calls):
            t0 = time.perf_counter()
            await client.call(METHOD)
            if i >= WARMUP:
                out.append((time.perf_counter() - t0) * 1000)
        return out, client.connections_opened


async def run(args: argparse.Namespace) -> int:
    reason = ssh_unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    base = Path(args.dir) if args.dir else None
    tmp = Path(tempfile.mkdtemp(prefix="spdkvirt-bench-ssh-", dir=base))
    target = make_target("sim", tmp, "sim", ["--rpc-poll-ms", str(args.rpc_poll_ms)])
    server: Sshd | None = None
    try:
        target.start()
        server = Sshd.start(tmp / "sshd", forced_socket=target.socket_path)
        known = (str(server.known_hosts),)
        ways: dict[str, Transport] = {
            "forced": SshTransport.from_url(
                server.url(target.socket_path, forced=True),
                SshOptions(identities=(str(server.identity(forced=True)),), known_hosts=known),
            ),
            "streamlocal": SshTransport.from_url(
                server.url(target.socket_path) + "?via=streamlocal",
                SshOptions(identities=(str(server.key_path),), known_hosts=known),
            ),
            "local": UnixTransport(target.socket_path),
        }
        print(
            f"simulator --rpc-poll-ms {args.rpc_poll_ms:g}; {METHOD}, {args.calls} sequential calls per way "
            f"after {WARMUP} warm-up; sshd on 127.0.0.1:{server.port}",
            flush=True,
        )
        print(f"{'way':<12} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}", flush=True)
        p50: dict[str, float] = {}
        for name, transport in ways.items():
            samples, opened = await round_trips(transport, args.calls)
            if opened != 1:
                raise RuntimeError(f"{name}: {opened} connections opened, expected 1")
            p50[name] = statistics.median(samples)
            print(
                f"{name:<12} {p50[name]:>8.3f} {percentile(samples, 99):>8.3f} "
                f"{statistics.fmean(samples):>8.3f} {max(samples):>8.3f}",
                flush=True,
            )
        print(
            f"ssh_forced_p50_ms={p50['forced']:.3f} ssh_streamlocal_p50_ms={p50['streamlocal']:.3f} "
            f"local_p50_ms={p50['local']:.3f}"
        )
        return 0
    finally:
        close_connections()
        if server is not None:
            server.stop()
        target.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per way (after a warm-up)")
    parser.add_argument("--rpc-poll-ms", type=float, default=0.0, help="simulator's RPC poller period (real SPDK: 4)")
    parser.add_argument("--dir", help="parent directory for the temp dir (sshd config, keys, logs)")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
