"""The TCP wire between simulators: NVMe-oF listeners serving namespaces, and the initiator side."""

from __future__ import annotations
