"""RAID bdevs: raid0, concat, raid1, superblocks, degrade and rebuild."""

from __future__ import annotations
