"""AIO bdevs over real files: bdev_aio_create/delete/rescan."""

from __future__ import annotations
