"""NVMe/TCP initiator: bdev_nvme_attach_controller and friends (remote legs)."""

from __future__ import annotations
