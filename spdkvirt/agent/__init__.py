"""The node agent: the node's state manager, the only process that talks to the node's SPDK.

It registers the node and its devices in the database under a lease (its liveness), keeps its SPDK
in line with the volume mappings (observe, plan with :mod:`spdkvirt.model.plan`, execute), reports
what it sees (device state, volume status), and carries out its part of quiescence.
"""
