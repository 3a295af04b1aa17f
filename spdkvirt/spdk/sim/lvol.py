"""Logical volumes: lvstores and lvols, with their metadata kept on the base bdev."""

from __future__ import annotations
