"""iSCSI target: portal, initiator and auth groups, target nodes, LUNs."""

from __future__ import annotations
