"""``spdkvirt store dump|check``: print or check the whole virtualization database.

Exit codes: 0 fine; 1 ``check`` found errors (or warnings, with ``--strict``); 2 the store could not be
opened or read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

import yaml

from spdkvirt.store import StoreError, default_url, keys, open_backend
from spdkvirt.store.check import check_records
from spdkvirt.store.schema import schemas
from spdkvirt.store.types import KeyValue, RangeResult, Undecodable


def register(sub: Any) -> None:
    store = sub.add_parser("store", help="inspect the virtualization database")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--store",
            metavar="URL",
            default=None,
            help="file:///path/to/dir or etcd://host:port[,host:port...] (default: $SPDKVIRT_STORE or "
            f"{default_url()})",
        )
        p.add_argument("--prefix", default=keys.ROOT, help=f"only keys under this prefix (default {keys.ROOT})")

    dump = actions.add_parser("dump", help="print every record (bad ones flagged, never hidden)")
    common(dump)
    dump.add_argument("--format", choices=("yaml", "json"), default="yaml")
    dump.set_defaults(func=run_dump)

    check = actions.add_parser("check", help="validate every record and the references between them")
    common(check)
    check.add_argument("--strict", action="store_true", help="warnings fail the check too")
    check.set_defaults(func=run_check)


async def _read(url: str, prefix: str) -> tuple[str, RangeResult]:
    backend = await open_backend(url, create=False)
    try:
        return backend.url, await backend.range(keys.check_prefix(prefix), prefix=True)
    finally:
        await backend.close()


def _load(args: argparse.Namespace, err: TextIO) -> tuple[str, RangeResult] | None:
    try:
        return asyncio.run(_read(args.store or default_url(), args.prefix))
    except (StoreError, ValueError, OSError) as e:
        print(f"spdkvirt store: {e}", file=err)
        return None


def _value(kv: KeyValue) -> Any:
    if isinstance(kv.value, Undecodable):
        return {"not_json": kv.value.raw.decode("utf-8", errors="backslashreplace")}
    return kv.value


def run_dump(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    loaded = _load(args, err or sys.stderr)
    if loaded is None:
        return 2
    url, snap = loaded
    checker = schemas()
    items = []
    for kv in snap.kvs:
        item: dict[str, Any] = {
            "key": kv.key,
            "create_revision": kv.create_revision,
            "mod_revision": kv.mod_revision,
            "version": kv.version,
        }
        if kv.lease:
            item["lease"] = f"{kv.lease:016x}"
        problems = checker.problems(kv.key, kv.value)
        if problems:
            item["problems"] = [f"{p.path or '$'}: {p.message}" for p in problems]
        item["value"] = _value(kv)
        items.append(item)
    doc = {"store": url, "revision": snap.revision, "count": len(items), "records": items}
    if args.format == "json":
        json.dump(doc, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        yaml.safe_dump(doc, out, sort_keys=False, allow_unicode=True, width=120)
    return 0


def run_check(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    loaded = _load(args, err or sys.stderr)
    if loaded is None:
        return 2
    url, snap = loaded
    findings = check_records(snap.kvs, schemas())
    for f in findings:
        print(f, file=out)
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    verdict = "FAILED" if errors or (args.strict and warnings) else "ok"
    print(
        f"{verdict}: {len(snap.kvs)} records at revision {snap.revision} in {url}: "
        f"{errors} error(s), {warnings} warning(s)",
        file=out,
    )
    return 0 if verdict == "ok" else 1
