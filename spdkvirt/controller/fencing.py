"""Out-of-band fencing: stop a node's SPDK serving volumes when its agent is gone.

The master calls :func:`fence` before it hands a down node's volumes to another owner. It reaches
the node's SPDK over SSH (the node record's ``fence.url``, an ``ssh://`` SPDK address; or
``unix:///path``, a target on the controller's own machine, as in a local cluster) and, by the
node's ``fence.method``:

- ``listeners``: removes every NVMe-oF listener of spdkvirt's volume subsystems and deletes
  spdkvirt's iSCSI target nodes, then lists again to check none is left;
- ``ana``: sets the ANA state of those listeners to inaccessible (a subsystem without ANA
  reporting loses its listeners instead) and deletes the iSCSI target nodes;
- ``stop``: ``spdk_kill_instance SIGKILL``, then checks the socket no longer answers.

When the RPCs fail, socat run over SSH tells whether SPDK's socket still accepts connections: a
target that SSH reaches but whose socket refuses them is not serving, and that counts as fenced.
Anything else (no SSH, host key refused, an RPC failing on a live socket) leaves the node unfenced,
and the master keeps its volumes where they are rather than serve them twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from spdkvirt.model import names
from spdkvirt.model.records import Node, now
from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import SpdkError
from spdkvirt.spdk.methods import Spdk

log = logging.getLogger(__name__)

ClientFactory = Callable[[str, float], SpdkClient]
#: (url, seconds) -> None when SPDK's socket accepts connections, else why it does not
Probe = Callable[[str, float], Awaitable[str | None]]

#: what socat says when nothing listens on the socket (or there is no socket)
NOT_LISTENING = ("Connection refused", "No such file or directory")


LOCAL = "unix://"


def _client(url: str, timeout: float) -> SpdkClient:
    address = url[len(LOCAL) :] if url.startswith(LOCAL) else url
    return SpdkClient(address, timeout=timeout, connect_timeout=timeout)


async def local_probe(url: str, within: float) -> str | None:
    """Connect to a local SPDK socket: None when it accepts, else why not."""
    path = url[len(LOCAL) :]
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_unix_connection(path)
    except (ConnectionRefusedError, FileNotFoundError) as e:
        return f"{path}: {e.strerror}"
    writer.close()
    return None


async def ssh_probe(url: str, within: float) -> str | None:
    """Over SSH, try to connect to SPDK's socket with socat (a forced-command key runs its own
    socat to the same socket). Raises when SSH fails or socat fails for another reason."""
    from spdkvirt.ssh import parse_ssh_url, run_command

    path = parse_ssh_url(url).path
    result = await run_command(url, ["socat", "-u", "/dev/null", f"UNIX-CONNECT:{path}"], timeout=within)
    if result.ok:
        return None
    said = result.stderr.decode(errors="replace").strip()
    if any(text in said for text in NOT_LISTENING):
        return said.splitlines()[-1]
    raise OSError(f"probing {path} over SSH failed (exit {result.exit_status}): {said[-300:]}")


@dataclass(frozen=True)
class FenceOutcome:
    node: str
    method: str
    ok: bool
    detail: str
    at: str
    ms: float

    def record(self) -> dict[str, Any]:
        return {"method": self.method, "ok": self.ok, "detail": self.detail[:1000], "at": self.at, "ms": self.ms}


class NotServing(Exception):
    """SSH reached the host but SPDK's socket is not there or refuses: the target is not running."""


async def fence(
    node: Node, *, within: float = 10.0, client: ClientFactory = _client, probe: Probe | None = None
) -> FenceOutcome:
    """Fence ``node`` as its record says; never raises."""
    started = time.monotonic()
    if node.fence is None:
        return FenceOutcome(node.node_id, "none", False, "no out-of-band fence configured", now(), 0.0)
    url, method = node.fence.url, node.fence.method
    if probe is None:
        probe = local_probe if url.startswith(LOCAL) else ssh_probe
    try:
        async with asyncio.timeout(within):
            try:
                detail = await _run(url, method, within, client, probe)
            except (OSError, SpdkError) as e:
                why = await probe(url, within)  # raises when SSH itself fails
                if why is None:
                    raise
                raise NotServing(why) from e
        ok = True
    except NotServing as e:
        ok, detail = True, f"SPDK is not running: {e}"
    except TimeoutError:
        ok, detail = False, f"no answer within {within:g} s"
    except (OSError, SpdkError, ValueError) as e:
        ok, detail = False, f"{type(e).__name__}: {e}"
    ms = round((time.monotonic() - started) * 1e3, 2)
    (log.info if ok else log.error)("fencing %s (%s) over %s: %s", node.node_id, method, url, detail)
    return FenceOutcome(node.node_id, method, ok, detail, now(), ms)


async def _run(url: str, method: str, within: float, client: ClientFactory, probe: Probe) -> str:
    c = client(url, within)
    spdk = Spdk(c)
    try:
        await spdk.spdk_get_version()
        if method == "stop":
            return await _stop(spdk, url, within, probe)
        return await _unexport(spdk, ana=method == "ana")
    finally:
        await c.close()


async def _volume_listeners(spdk: Spdk) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    subsystems, targets = await asyncio.gather(spdk.nvmf_get_subsystems(), spdk.iscsi_get_target_nodes())
    listeners = []
    for sub in subsystems:
        nqn = str(sub.get("nqn", ""))
        if not nqn.startswith(names.VOLUME_NQN_PREFIX):
            continue
        for a in sub.get("listen_addresses", ()):
            listeners.append((nqn, {k: a[k] for k in ("trtype", "adrfam", "traddr", "trsvcid") if k in a}))
    iqns = [str(t["name"]) for t in targets if str(t.get("name", "")).startswith(names.IQN_BASE + ":")]
    return listeners, iqns


async def _unexport(spdk: Spdk, *, ana: bool) -> str:
    listeners, iqns = await _volume_listeners(spdk)
    remove = listeners
    if ana:  # a subsystem without ANA reporting refuses (-EINVAL): its listener goes instead
        outcomes = await asyncio.gather(
            *(spdk.nvmf_subsystem_listener_set_ana_state(nqn, addr, "inaccessible") for nqn, addr in listeners),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, SpdkError):
                raise outcome
        remove = [item for item, outcome in zip(listeners, outcomes, strict=True) if isinstance(outcome, SpdkError)]
    await asyncio.gather(
        *(spdk.nvmf_subsystem_remove_listener(nqn, addr) for nqn, addr in remove),
        *(spdk.iscsi_delete_target_node(iqn) for iqn in iqns),
    )
    left, left_iqns = await _volume_listeners(spdk)
    if len(left) != len(listeners) - len(remove):
        raise OSError(f"{len(left)} volume listener(s) still there after removal")
    if left_iqns:
        raise OSError(f"{len(left_iqns)} iSCSI target node(s) still there after removal")
    inaccessible = len(listeners) - len(remove)
    done = f"{len(remove)} NVMe-oF volume listener(s) removed"
    if ana:
        done = f"{inaccessible} NVMe-oF volume listener(s) set inaccessible, " + done
    return f"{done}, {len(iqns)} iSCSI target node(s) removed"


async def _stop(spdk: Spdk, url: str, within: float, probe: Probe) -> str:
    try:
        await spdk.spdk_kill_instance("SIGKILL")
    except (OSError, SpdkError) as e:  # SIGKILL: the connection goes without an answer
        log.debug("spdk_kill_instance: %s", e)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        why = await probe(url, max(0.5, deadline - time.monotonic()))
        if why is not None:
            return f"SPDK stopped by spdk_kill_instance SIGKILL ({why})"
        await asyncio.sleep(0.1)
    raise OSError("SPDK still answers after spdk_kill_instance SIGKILL")
