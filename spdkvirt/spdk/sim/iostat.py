"""bdev_get_iostat, bdev_reset_iostat and bdev_set_qos_limit."""

from __future__ import annotations
