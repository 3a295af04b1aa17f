"""Imports every simulator module so that its RPC handlers and examiners register."""

from __future__ import annotations

import importlib

MODULES = (
    "framework",
    "faults",
    "malloc",
    "aio",
    "raid",
    "lvol",
    "error_bdev",
    "passthru",
    "iostat",
    "config",
    "nvmf",
    "nvme_tcp",
    "nvme",
    "iscsi",
)


def load_all() -> None:
    for name in MODULES:
        importlib.import_module(f"{__package__}.{name}")
