"""Multi-node cluster tests: each node in its own network namespace, on a private bridge, with real etcd.

Needs root, iproute2 (``ip``) and etcd; without them the tests are skipped (under CI=true they fail).

How to use the harness
----------------------
Ask for the ``cluster`` fixture (conftest.py) and call it with ``Cluster``'s keyword arguments::

    async def test_something(cluster):
        c = cluster(nodes=("n1", "n2", "n3"), devices=2, device_size=64 << 20, poll_ms=4, etcd_members=3)
        n1 = c.node("n1")             # Node: name, namespace, address, spdk_socket, devices (id, path), dir
        async with c.spdk("n1") as spdk:          # typed SPDK wrappers over the node's RPC socket
            await spdk.bdev_aio_create(str(n1.devices[0].path), "d0", block_size=512)
        c.start_agent("n1")           # = c.start_in("n1", "n1-agent", c.agent_argv("n1")), in n1's namespace
        c.partition("n1"); c.heal("n1")           # n1's link down / up
        c.kill_node("n2")             # SIGKILL n2's SPDK target and everything started in its namespace
        c.restart_sim("n2")           # a fresh, empty target on the same socket
        c.procs.stop("n1-agent")      # SIGTERM, then SIGKILL; logs in <workdir>/logs/<name>.log

``c.store_url`` is the etcd URL (on the bridge address: reachable from every namespace and from the
test); ``c.etcd`` is the ``LocalEtcd`` (kill/restart members); ``c.net`` the ``Network``;
``c.run_in(node, argv)`` runs a short command in a namespace; ``wait_for(predicate, within=...)``
(``tests.cluster.procs``) polls. Outside pytest use ``with Cluster(workdir, ...) as c:``.

Everything is torn down when the test ends, at interpreter exit, and on SIGTERM/SIGINT (processes,
then etcd, then namespaces, veths and bridge); ``Network.reap_stale()`` (run once per session by
``cluster_env``) removes what a killed run left. With ``$SPDKVIRT_SPDK_TGT`` set, the nodes run a real
spdk_tgt instead of the simulator.

Modules: ``netns`` (bridge, namespaces, partitions), ``procs`` (child processes, exit hooks),
``harness`` (``Cluster``), ``conftest`` (fixtures).
"""
