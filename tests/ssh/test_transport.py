"""SpdkClient over ssh:// to a simulator behind a real sshd, by streamlocal and by forced command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from spdkvirt.spdk.client import SpdkClient
from spdkvirt.spdk.errors import SpdkConnectError, SpdkConnectionLost, SpdkTimeout
from spdkvirt.ssh.bridge import channel_streams
from spdkvirt.ssh.connection import close_connections, connection
from spdkvirt.ssh.options import set_default_options
from spdkvirt.ssh.transport import SshTransport
from spdkvirt.ssh.url import parse_ssh_url
from tests.ssh.conftest import needs_sshd, options_for
from tests.support.sshd import Sshd
from tests.support.targets import TargetProcess

pytestmark = needs_sshd

WAYS = {
    "streamlocal": (False, ""),
    "forced-command-by-unrestricted-key": (False, "?via=forced"),
    "forced-key-auto-fallback": (True, ""),
    "forced-key": (True, "?via=forced"),
}


def logins(server: Sshd) -> int:
    return server.log_path.read_text().count("Accepted publickey")


def client_for(server: Sshd, sim: TargetProcess, way: str) -> SpdkClient:
    forced_key, query = WAYS[way]
    transport = SshTransport.from_url(server.url(sim.socket_path) + query, options_for(server, forced=forced_key))
    return SpdkClient(transport, timeout=10)


@pytest.mark.parametrize("way", list(WAYS))
async def test_rpcs_and_pipelined_batches(sshd: Sshd, sim: TargetProcess, way: str) -> None:
    async with client_for(sshd, sim, way) as client:
        version = await client.call("spdk_get_version")
        assert "version" in version
        await client.call("bdev_malloc_create", {"name": "M0", "num_blocks": 2048, "block_size": 512})
        replies = await client.gather([("bdev_get_bdevs", {"name": "M0"})] * 40)
        assert all(r[0]["name"] == "M0" for r in replies)
        async with client.batch() as batch:
            a = batch.call("spdk_get_version")
            b = batch.call("bdev_get_bdevs")
        assert "version" in a.result() and len(b.result()) == 1
        assert client.connections_opened == 1
    assert logins(sshd) == 1


async def test_reconnect_after_the_ssh_connection_drops(sshd: Sshd, sim: TargetProcess) -> None:
    async with client_for(sshd, sim, "streamlocal") as client:
        await client.call("spdk_get_version")
        assert sshd.drop_connections() >= 1
        async with asyncio.timeout(10):
            while client.connected:  # noqa: ASYNC110 - nothing to wait on but the client's state
                await asyncio.sleep(0.01)
        assert "version" in await client.call("spdk_get_version")
        assert client.connections_opened == 2
    assert logins(sshd) == 2


async def test_call_in_flight_when_the_connection_drops_is_lost_then_reconnects(sshd: Sshd, sim: TargetProcess) -> None:
    async with client_for(sshd, sim, "forced-key") as client:
        await client.call("spdk_get_version")
        await client.call("sim_rpc_delay", {"method": "bdev_get_bdevs", "ms": 2000})
        pending = asyncio.ensure_future(client.call("bdev_get_bdevs"))
        await asyncio.sleep(0.2)
        sshd.drop_connections()
        with pytest.raises(SpdkConnectionLost):
            await pending
        assert "version" in await client.call("spdk_get_version")


async def test_clients_share_one_ssh_connection(sshd: Sshd, sim: TargetProcess) -> None:
    clients = [client_for(sshd, sim, "streamlocal") for _ in range(3)]
    try:
        await asyncio.gather(*(c.call("spdk_get_version") for c in clients))
    finally:
        for c in clients:
            await c.close()
    assert logins(sshd) == 1


async def test_closing_closes_the_channel(sshd: Sshd, sim: TargetProcess) -> None:
    transport = SshTransport.from_url(sshd.url(sim.socket_path), options_for(sshd, forced=True))
    reader, writer = await transport.open()
    chan = writer.get_extra_info("channel")
    writer.write(b'{"jsonrpc":"2.0","method":"spdk_get_version","id":1}')
    assert b"version" in await reader.read(65536)
    writer.close()
    await writer.wait_closed()
    assert chan.closed


async def test_remote_close_is_eof(sshd: Sshd, sim: TargetProcess) -> None:
    async with client_for(sshd, sim, "streamlocal") as client:
        await client.call("spdk_get_version")
        with pytest.raises(SpdkConnectionLost, match="closed by the server"):
            await client.call("sim_drop_connections")
        async with asyncio.timeout(10):
            while client.connected:  # noqa: ASYNC110 - nothing to wait on but the client's state
                await asyncio.sleep(0.01)
        assert "version" in await client.call("spdk_get_version")
        assert client.connections_opened == 2
    assert logins(sshd) == 1


async def test_megabytes_both_ways_through_a_full_window(sshd: Sshd) -> None:
    conn = await connection(parse_ssh_url(sshd.url()), options_for(sshd))
    chan = conn.transport.open_session(timeout=5)
    chan.exec_command("cat")
    reader, writer = await channel_streams(chan, "cat")
    payload = bytes(range(256)) * (8 * 4096)  # 8 MiB, four times the channel window

    async def send() -> None:
        for i in range(0, len(payload), 1 << 20):
            writer.write(payload[i : i + (1 << 20)])
            await writer.drain()
        writer.write_eof()

    sending = asyncio.create_task(send())
    got = await asyncio.wait_for(reader.read(-1), 60)
    await sending
    assert got == payload
    writer.close()
    await writer.wait_closed()


async def test_eof_after_buffered_data_goes_after_it(sshd: Sshd) -> None:
    """write_eof with data still waiting for the channel window sends the data first, then EOF."""
    conn = await connection(parse_ssh_url(sshd.url()), options_for(sshd))
    chan = conn.transport.open_session(timeout=5)
    chan.exec_command("cat")
    reader, writer = await channel_streams(chan, "cat")
    payload = bytes(range(256)) * (4 * 4096)  # 4 MiB: far more than one window
    writer.write(payload)
    writer.write_eof()  # no drain first: most of it is still buffered here
    with pytest.raises(RuntimeError):
        writer.write(b"late")
    got = await asyncio.wait_for(reader.read(-1), 60)
    assert got == payload
    writer.close()
    await writer.wait_closed()


async def test_forced_command_failure_is_reported(sshd: Sshd, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.sock")
    transport = SshTransport.from_url(sshd.url(missing, forced=True), options_for(sshd))
    async with SpdkClient(transport, timeout=10) as client:
        with pytest.raises(SpdkConnectionLost) as info:
            await client.call("spdk_get_version")
    text = str(info.value)
    assert "remote command exited with status 1" in text and "No such file or directory" in text


async def test_streamlocal_refused_says_so(sshd: Sshd, sim: TargetProcess) -> None:
    transport = SshTransport.from_url(sshd.url(sim.socket_path) + "?via=streamlocal", options_for(sshd, forced=True))
    async with SpdkClient(transport, timeout=10) as client:
        with pytest.raises(SpdkConnectError) as info:
            await client.call("spdk_get_version")
    assert "refused direct-streamlocal@openssh.com channel" in str(info.value)
    assert "AllowStreamLocalForwarding" in str(info.value)


async def test_address_string_with_process_default_options(sshd: Sshd, sim: TargetProcess) -> None:
    set_default_options(options_for(sshd))
    async with SpdkClient(sshd.url(sim.socket_path), timeout=10) as client:
        assert "version" in await client.call("spdk_get_version")


async def test_auto_says_what_was_tried(sshd: Sshd, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.sock")
    transport = SshTransport.from_url(sshd.url(missing), options_for(sshd))
    async with SpdkClient(transport, timeout=10) as client:
        with pytest.raises(SpdkConnectionLost) as info:
            await client.call("spdk_get_version")
    text = str(info.value)
    assert "forced after streamlocal was refused" in text and "remote command exited with status 1" in text


async def test_a_connection_that_stops_answering_is_replaced(sshd: Sshd, sim: TargetProcess) -> None:
    async with client_for(sshd, sim, "streamlocal") as client:
        await client.call("spdk_get_version")
        hung = sshd.session_pids()
        for pid in hung:
            os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(SpdkTimeout):
                await client.call("spdk_get_version", timeout=0.5)
            async with asyncio.timeout(20):
                while True:
                    try:
                        assert "version" in await client.call("spdk_get_version", timeout=2)
                        break
                    except (SpdkConnectError, SpdkTimeout):
                        await asyncio.sleep(0.05)
        finally:
            for pid in hung:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    os.kill(pid, signal.SIGCONT)
    assert logins(sshd) == 2


async def test_closing_right_after_the_connection_broke(sshd: Sshd, sim: TargetProcess) -> None:
    for _ in range(10):
        client = client_for(sshd, sim, "streamlocal")
        await client.call("spdk_get_version")
        sshd.drop_connections()
        async with asyncio.timeout(5):
            await client.close()
        close_connections()
