"""NVMe-oF target: transports, subsystems, namespaces, listeners, hosts, ANA."""

from __future__ import annotations
