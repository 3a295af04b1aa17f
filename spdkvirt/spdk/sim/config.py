"""framework_get_config: what save_config collects."""

from __future__ import annotations
