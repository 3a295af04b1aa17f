"""The HTTP(S) listener and its bearer tokens: 401s, token file checks, HTTP mistakes, TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spdkvirt.api import ApiServer
from spdkvirt.api.auth import TokenFileError, bearer_ok, read_token_file
from spdkvirt.api.client import ApiClient, ApiUnreachable
from spdkvirt.api.server import Dispatcher

TOKEN = "t0ken-" + "x" * 26
BODY = b'{"jsonrpc": "2.0", "id": 1, "method": "node_list", "params": {}}'


def token_file(directory: Path, mode: int = 0o600, text: str = TOKEN) -> Path:
    path = directory / "token"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


@pytest.fixture
async def server(tmp_path: Path, dispatcher: Dispatcher) -> AsyncIterator[ApiServer]:
    async with ApiServer(dispatcher, http=("127.0.0.1", 0), token_file=token_file(tmp_path)) as srv:
        yield srv


async def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def post(body: bytes, token: str | None = TOKEN, *, extra: str = "", method: str = "POST", path: str = "/") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", "Connection: close"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode() + body


async def test_token_calls_through_the_client(server: ApiServer) -> None:
    async with ApiClient(f"http://127.0.0.1:{server.http_port}", TOKEN) as client:
        assert len(await client.call("node_list")) == 3


@pytest.mark.parametrize("token", [None, "wrong-" + "x" * 26, TOKEN + "x", "", TOKEN[:-1]])
async def test_missing_or_wrong_token_is_401(server: ApiServer, token: str | None) -> None:
    assert server.http_port is not None
    status, headers, _ = await raw_exchange(server.http_port, post(BODY, token))
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")


async def test_client_reports_401(server: ApiServer) -> None:
    with pytest.raises(ApiUnreachable, match="401"):
        await ApiClient(f"http://127.0.0.1:{server.http_port}", "nope-" + "x" * 20).call("node_list")


async def test_basic_auth_scheme_is_refused(server: ApiServer) -> None:
    assert server.http_port is not None
    request = post(BODY, None, extra=f"Authorization: Basic {TOKEN}\r\n")
    assert (await raw_exchange(server.http_port, request))[0] == 401


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (post(BODY, method="GET"), 405),
        (post(BODY, path="/admin"), 404),
        (b"POST / HTTP/1.1\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n", 411),
        (post(b"", extra="Transfer-Encoding: chunked\r\n"), 501),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n", 413),
        (b"garbage\r\n\r\n", 400),
        (b"POST / HTTP/2.0\r\n\r\n", 505),
    ],
)
async def test_http_mistakes(server: ApiServer, request_bytes: bytes, status: int) -> None:
    assert server.http_port is not None
    assert (await raw_exchange(server.http_port, request_bytes))[0] == status


async def test_notification_only_is_204(server: ApiServer) -> None:
    assert server.http_port is not None
    body = b'{"jsonrpc": "2.0", "method": "node_list", "params": {}}'
    status, _, data = await raw_exchange(server.http_port, post(body))
    assert status == 204 and data == b""


async def test_keep_alive_serves_several_requests(server: ApiServer) -> None:
    assert server.http_port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    try:
        one = post(BODY).replace(b"Connection: close\r\n", b"")
        for _ in range(3):
            writer.write(one)
            await writer.drain()
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
            headers = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
            length = int(headers.split("content-length: ")[1].split("\r\n")[0])
            assert "result" in json.loads(await reader.readexactly(length))
    finally:
        writer.close()
        await writer.wait_closed()


def test_bearer_compare() -> None:
    assert bearer_ok(f"Bearer {TOKEN}", TOKEN)
    assert bearer_ok(f"bearer  {TOKEN} ", TOKEN)
    assert not bearer_ok(None, TOKEN)
    assert not bearer_ok(TOKEN, TOKEN)
    assert not bearer_ok(f"Bearer {TOKEN}\u00e9", TOKEN)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o602])
async def test_token_file_readable_by_others_is_refused(tmp_path: Path, dispatcher: Dispatcher, mode: int) -> None:
    path = token_file(tmp_path, mode)
    with pytest.raises(TokenFileError, match="chmod 600"):
        await ApiServer(dispatcher, http=("127.0.0.1", 0), token_file=path).start()


def test_token_file_other_problems(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="does not exist"):
        read_token_file(tmp_path / "missing")
    with pytest.raises(TokenFileError, match="at least"):
        read_token_file(token_file(tmp_path, text="short"))
    link = tmp_path / "link"
    link.symlink_to(token_file(tmp_path))
    with pytest.raises(TokenFileError):
        read_token_file(link)
    assert read_token_file(token_file(tmp_path)) == TOKEN


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_token_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = token_file(tmp_path)
    os.chown(path, 4242, -1)
    with pytest.raises(TokenFileError, match="owned by uid 4242"):
        read_token_file(path)


def make_cert(directory: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1: with the cryptography package, else openssl; None if neither."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        from cryptography import x509  # type: ignore[import-not-found, unused-ignore]
        from cryptography.hazmat.primitives import hashes, serialization  # type: ignore[import-not-found, unused-ignore]
        from cryptography.hazmat.primitives.asymmetric import ec  # type: ignore[import-not-found, unused-ignore]
        from cryptography.x509.oid import NameOID  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            return None
        subprocess.run(
            [
                *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
                *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"),
                *("-addext", "subjectAltName=IP:127.0.0.1"),
            ],
            check=True,
            capture_output=True,
        )
        return cert, key
    pkey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pkey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(pkey, hashes.SHA256())
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        pkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key


async def test_tls(tmp_path: Path, dispatcher: Dispatcher) -> None:
    made = make_cert(tmp_path)
    if made is None:
        pytest.skip("neither the cryptography package nor openssl is available")
    cert, key = made
    srv = ApiServer(dispatcher, http=("127.0.0.1", 0), token_file=token_file(tmp_path), cert=cert, key=key)
    async with srv:
        url = f"https://127.0.0.1:{srv.http_port}"
        async with ApiClient(url, TOKEN, cafile=str(cert)) as client:
            assert len(await client.call("node_list")) == 3
        with pytest.raises(ApiUnreachable, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            await ApiClient(url, TOKEN).call("node_list")
        with pytest.raises(ApiUnreachable, match="401"):
            await ApiClient(url, "bad-" + "x" * 20, cafile=str(cert)).call("node_list")
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.http_port)
        writer.write(post(BODY))
        assert b"result" not in await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await writer.wait_closed()


async def test_401_arrives_even_with_a_large_unread_body(server: ApiServer) -> None:
    assert server.http_port is not None
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "node_list", "params": {"x": "' + b"y" * 500_000 + b'"}}'
    status, _, _ = await raw_exchange(server.http_port, post(body, "wrong-" + "x" * 26))
    assert status == 401
