"""A process that wins an election and holds it until killed (for leader failover tests).

usage: python campaigner.py STORE_URL ELECTION HOLDER TTL
Prints ``LEADER <token> <key>`` once leading, then keeps its lease alive forever.
"""

from __future__ import annotations

import asyncio
import sys

from spdkvirt.store import open_store


async def main(url: str, election: str, holder: str, ttl: int) -> None:
    store = await open_store(url)
    lease = await store.grant_lease(ttl)
    leadership = await store.election(election).campaign(holder, lease)
    print("LEADER", leadership.token, leadership.key, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
