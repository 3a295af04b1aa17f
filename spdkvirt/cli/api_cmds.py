"""The commands that drive a cluster through its admin API: ``spdkvirt volume|export|node|device|cluster|epoch``.

Which cluster: ``--api URL`` (``unix:///path``, ``http(s)://host:port``; ``$SPDKVIRT_API``), else
``--workdir DIR`` (the cluster ``spdkvirt up --workdir DIR`` started, at ``DIR/api.sock``;
``$SPDKVIRT_WORKDIR``). HTTP(S) needs ``--token-file F`` (``$SPDKVIRT_TOKEN_FILE``), a file only its owner
can read; ``--cacert F`` names the CA of a self-signed server. Output is a table by default, the
API's JSON with ``--json`` (before or after the command).

Exit codes: 0 done; 1 the API answered with an error; 2 bad usage (a size that cannot be read, no
cluster named); 3 the API could not be reached. An error is one line on stderr:
``error: <message> (<path of the offending field>)``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from spdkvirt.api import api_socket
from spdkvirt.api.auth import TokenFileError, read_token_file
from spdkvirt.api.client import ApiUnreachable, call_sync
from spdkvirt.api.errors import ApiError
from spdkvirt.cli import output
from spdkvirt.cli.sizes import SizeError, parse_size

#: every API method and the command that calls it
COMMANDS: dict[str, tuple[str, str]] = {
    "volume_create": ("volume", "create"),
    "volume_list": ("volume", "list"),
    "volume_get": ("volume", "show"),
    "volume_delete": ("volume", "delete"),
    "volume_resize": ("volume", "resize"),
    "volume_snapshot": ("volume", "snapshot"),
    "volume_clone": ("volume", "clone"),
    "export_create": ("export", "create"),
    "export_list": ("export", "list"),
    "export_delete": ("export", "delete"),
    "node_list": ("node", "list"),
    "device_list": ("device", "list"),
    "device_set_state": ("device", "set-state"),
    "cluster_status": ("cluster", "status"),
    "epoch_list": ("epoch", "list"),
}
GROUP_HELP = {
    "volume": "create, inspect, grow, snapshot, clone and delete volumes",
    "export": "export volumes over NVMe-oF or iSCSI",
    "node": "storage nodes",
    "device": "devices of the storage nodes",
    "cluster": "the cluster as a whole",
    "epoch": "quiesce/remap epochs",
}
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_PENDING = 4  # done as asked so far, but still under way (a volume still creating)
_CLEAR = "\x1b[H\x1b[2J"


class UsageError(Exception):
    """A command line that cannot be carried out as given."""


@dataclass(frozen=True)
class Target:
    """The API to call and how."""

    url: str
    token: str | None = None
    cafile: str | None = None

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        return call_sync(self.url, method, params, token=self.token, cafile=self.cafile)


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """``--workdir``, ``--api``, ``--token-file``, ``--cacert``, ``--json``: on the top-level parser, and
    (``suppress``: without defaults, so they do not override the top-level ones) after each command."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--workdir", metavar="DIR", default=default(None), help="work directory of the cluster")
    parser.add_argument("--api", metavar="URL", default=default(None), help="unix:///path or http(s)://host:port")
    parser.add_argument("--token-file", metavar="F", default=default(None), help="bearer token for HTTP(S)")
    parser.add_argument("--cacert", metavar="F", default=default(None), help="CA certificate of an HTTPS API")
    parser.add_argument("--json", action="store_true", default=default(False), help="print the API's JSON")


def target(args: argparse.Namespace) -> Target:
    """Where the command goes, from the options and environment."""
    url = args.api or os.environ.get("SPDKVIRT_API")
    if not url:
        workdir = args.workdir or os.environ.get("SPDKVIRT_WORKDIR")
        if not workdir:
            raise UsageError("no cluster named: use --workdir DIR or --api URL")
        url = f"unix://{api_socket(Path(workdir)).resolve()}"
    token = None
    if not url.startswith("unix:") and not url.startswith("/"):
        token_file = args.token_file or os.environ.get("SPDKVIRT_TOKEN_FILE")
        if token_file:
            token = read_token_file(token_file)
    return Target(url, token, args.cacert or os.environ.get("SPDKVIRT_CACERT"))


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except SizeError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _secret(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


def _key(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    if getattr(args, "idempotency_key", None):
        params["idempotency_key"] = args.idempotency_key
    return params


# actions: each returns what to print, given the target and the arguments

Action = Callable[[Target, argparse.Namespace, TextIO], Any]


def _show_volume(vol: Mapping[str, Any]) -> str:
    return output.volume_detail(vol)


def volume_create(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    params: dict[str, Any] = {"name": a.name, "size_bytes": a.size, "redundancy": a.redundancy, "thin": not a.thick}
    placement = {k: v for k, v in (("nodes", a.node), ("exclude_nodes", a.exclude_node)) if v}
    if placement:
        params["placement"] = placement
    vol = t.call("volume_create", _key(a, params))
    pending = ""
    if vol.get("state") == "creating":
        pending = f"volume {a.name} is still creating: `spdkvirt volume show {a.name} --watch` follows it"
    return vol, _show_volume, pending


def volume_list(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    return t.call("volume_list"), lambda rows: output.table(rows, output.VOLUME_COLUMNS)


def volume_show(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    vol = t.call("volume_get", {"name": a.name})
    if not a.watch:
        return vol, _show_volume
    tty = out.isatty()
    while True:
        if a.json:
            output.print_json(vol, out)
        else:
            out.write((_CLEAR if tty else "") + _show_volume(vol) + "\n" + ("" if tty else "\n"))
        out.flush()
        if vol["state"] not in ("rebuilding", "creating"):
            return None
        time.sleep(a.interval)
        vol = t.call("volume_get", {"name": a.name})


def volume_delete(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    t.call("volume_delete", _key(a, {"name": a.name}))
    return True, lambda _: f"deleted volume {a.name}"


def volume_resize(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    return t.call("volume_resize", _key(a, {"name": a.name, "size_bytes": a.size})), _show_volume


def volume_snapshot(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    snap = t.call("volume_snapshot", _key(a, {"name": a.name, "snapshot_name": a.snapshot_name}))
    return snap, lambda s: f"snapshot {s['snapshot_name']} of {s['volume']} taken"


def volume_clone(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    return t.call("volume_clone", _key(a, {"snapshot_name": a.snapshot_name, "name": a.name})), _show_volume


def export_create(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    params: dict[str, Any] = {"volume": a.volume, "protocol": a.protocol}
    if a.host:
        params["hosts"] = a.host
    if a.allow_any_host:
        params["allow_any_host"] = True
    if a.dhchap_key:
        params["dhchap"] = {"key": a.dhchap_key} | ({"ctrlr_key": a.dhchap_ctrlr_key} if a.dhchap_ctrlr_key else {})
    if a.initiator:
        params["initiators"] = a.initiator
    if a.netmask:
        params["netmasks"] = a.netmask
    if a.chap_user:
        params["chap"] = {"user": a.chap_user, "secret": _secret(a.chap_secret_file) or ""}
        if a.mutual_chap_user:
            params["chap"] |= {"mutual_user": a.mutual_chap_user, "mutual_secret": _secret(a.mutual_chap_secret_file)}
    if a.allow_second_protocol:
        params["allow_second_protocol"] = True
    exp = t.call("export_create", _key(a, params))
    return exp, lambda e: output.table([e], output.EXPORT_COLUMNS)


def export_list(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    params = {"volume": a.volume} if a.volume else {}
    return t.call("export_list", params), lambda rows: output.table(rows, output.EXPORT_COLUMNS)


def export_delete(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    t.call("export_delete", {"volume": a.volume, "export_id": a.export_id})
    return True, lambda _: f"deleted export {a.export_id} of {a.volume}"


def node_list(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    return t.call("node_list"), lambda rows: output.table(rows, output.NODE_COLUMNS)


def device_list(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    params = {"node": a.node} if a.node else {}
    return t.call("device_list", params), lambda rows: output.table(rows, output.DEVICE_COLUMNS)


def device_set_state(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    params = {"node": a.node, "device_id": a.device_id, "state": a.state}
    if a.reason:
        params["reason"] = a.reason
    return t.call("device_set_state", params), lambda d: output.table([d], output.DEVICE_COLUMNS)


def cluster_status(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    return t.call("cluster_status"), output.cluster_detail


def epoch_list(t: Target, a: argparse.Namespace, out: TextIO) -> Any:
    return t.call("epoch_list", {"limit": a.limit}), lambda rows: output.table(rows, output.EPOCH_COLUMNS)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Carry out one API command; errors become one line on ``err`` and an exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    action: Action = args.api_action
    try:
        done = action(target(args), args, out)
    except ApiError as e:
        path = e.data.get("path")
        print(f"error: {e.message}" + (f" ({path})" if isinstance(path, str) else ""), file=err)
        return EXIT_API_ERROR
    except (UsageError, TokenFileError) as e:
        print(f"error: {e}", file=err)
        return EXIT_USAGE
    except (ApiUnreachable, ValueError) as e:
        print(f"error: {e}", file=err)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    if done is None:
        return 0
    result, show, *pending = done  # an action may add why its work is still under way
    if args.json:
        output.print_json(result, out)
    else:
        print(show(result), file=out)
    if pending and pending[0]:
        print(pending[0], file=err)
        return EXIT_PENDING
    return 0


# parsers


def _action(groups: dict[str, Any], group: str, name: str, func: Action, help_text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = groups[group].add_parser(name, help=help_text, description=help_text)
    add_global_options(p, suppress=True)
    p.set_defaults(func=run, api_action=func)
    return p


def _with_key(p: argparse.ArgumentParser) -> None:
    p.add_argument("--idempotency-key", metavar="KEY", help="a retry with the same key returns the first result")


def register(sub: Any) -> None:
    """Add the command groups to the top-level subparsers."""
    groups: dict[str, Any] = {}
    for group, help_text in GROUP_HELP.items():
        gp = sub.add_parser(group, help=help_text, description=help_text)
        groups[group] = gp.add_subparsers(dest=f"{group}_command", metavar="ACTION", required=True)

    p = _action(groups, "volume", "create", volume_create, "create a volume")
    p.add_argument("name")
    p.add_argument("--size", type=_size, required=True, help="e.g. 64MiB, 10GiB")
    p.add_argument("--redundancy", type=int, default=2, help="copies of the data, 1..3 (default 2)")
    p.add_argument("--thick", action="store_true", help="allocate all space now (default: thin)")
    p.add_argument("--node", action="append", metavar="NODE", help="place legs only on these nodes")
    p.add_argument("--exclude-node", action="append", metavar="NODE", help="never place legs on these nodes")
    _with_key(p)

    _action(groups, "volume", "list", volume_list, "list volumes")

    p = _action(groups, "volume", "show", volume_show, "show a volume with its legs")
    p.add_argument("name")
    p.add_argument("--watch", action="store_true", help="redraw until the volume stops rebuilding")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between redraws (default 1)")

    p = _action(groups, "volume", "delete", volume_delete, "delete a volume")
    p.add_argument("name")
    _with_key(p)

    p = _action(groups, "volume", "resize", volume_resize, "grow a volume")
    p.add_argument("name")
    p.add_argument("--size", type=_size, required=True, help="new size, e.g. 128MiB")
    _with_key(p)

    p = _action(groups, "volume", "snapshot", volume_snapshot, "snapshot a volume")
    p.add_argument("name")
    p.add_argument("snapshot_name")
    _with_key(p)

    p = _action(groups, "volume", "clone", volume_clone, "create a volume from a snapshot")
    p.add_argument("snapshot_name")
    p.add_argument("name")
    _with_key(p)

    p = _action(groups, "export", "create", export_create, "export a volume")
    p.add_argument("volume")
    p.add_argument("--protocol", choices=("nvmf", "iscsi"), required=True)
    p.add_argument("--host", action="append", metavar="NQN", help="host NQN allowed to connect (nvmf)")
    p.add_argument("--allow-any-host", action="store_true", help="any host may connect (nvmf)")
    p.add_argument("--dhchap-key", metavar="KEY", help="keyring key for DH-HMAC-CHAP (nvmf)")
    p.add_argument("--dhchap-ctrlr-key", metavar="KEY", help="keyring key for bidirectional DH-HMAC-CHAP (nvmf)")
    p.add_argument("--initiator", action="append", metavar="NAME", help="initiator name or ANY (iscsi)")
    p.add_argument("--netmask", action="append", metavar="NET", help="initiator network or ANY (iscsi)")
    p.add_argument("--chap-user", metavar="USER", help="CHAP user (iscsi)")
    p.add_argument("--chap-secret-file", metavar="F", help="file holding the CHAP secret (iscsi)")
    p.add_argument("--mutual-chap-user", metavar="USER", help="mutual CHAP user (iscsi)")
    p.add_argument("--mutual-chap-secret-file", metavar="F", help="file holding the mutual CHAP secret (iscsi)")
    p.add_argument(
        "--allow-second-protocol",
        action="store_true",
        help="kept for compatibility: a second protocol on one volume is refused (SPDK serves a bdev over one)",
    )
    _with_key(p)

    p = _action(groups, "export", "list", export_list, "list exports")
    p.add_argument("--volume", help="only this volume's exports")

    p = _action(groups, "export", "delete", export_delete, "remove an export")
    p.add_argument("volume")
    p.add_argument("export_id")

    _action(groups, "node", "list", node_list, "list storage nodes")

    p = _action(groups, "device", "list", device_list, "list devices")
    p.add_argument("--node", help="only this node's devices")

    p = _action(groups, "device", "set-state", device_set_state, "take a device into or out of maintenance")
    p.add_argument("node")
    p.add_argument("device_id")
    p.add_argument("state", choices=("available", "maintenance", "removed"))
    p.add_argument("--reason", help="why (kept with the device)")

    _action(groups, "cluster", "status", cluster_status, "summarise the cluster")

    p = _action(groups, "epoch", "list", epoch_list, "list the latest quiesce epochs")
    p.add_argument("--limit", type=int, default=20, help="how many (default 20)")
