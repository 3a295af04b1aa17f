"""spdkvirt: a control plane for SPDK storage clusters."""

__version__ = "0.1.0"
