"""Error-injection bdevs: bdev_error_create/inject_error/resume_pending/delete."""

from __future__ import annotations
