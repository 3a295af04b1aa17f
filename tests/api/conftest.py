"""Fixtures of the API tests: a FakeService behind a dispatcher with result checking on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spdkvirt.api.server import Dispatcher
from spdkvirt.api.service import MemoryIdempotencyLog
from tests.api.fake import FakeService


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
def dispatcher(fake: FakeService) -> Dispatcher:
    return Dispatcher(fake, fake, idempotency=MemoryIdempotencyLog(), debug=True)


def request(method: str, params: Any = None, rid: Any = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if rid is not None:
        msg["id"] = rid
    return msg


async def wire(dispatcher: Dispatcher, message: Any) -> Any:
    """Send ``message`` (bytes, or a value to encode) through handle_bytes; the decoded answer."""
    data = message if isinstance(message, bytes) else json.dumps(message).encode()
    out = await dispatcher.handle_bytes(data)
    return None if out is None else json.loads(out)
