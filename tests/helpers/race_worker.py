"""A separate process that races to decide the same requests on a shared store: a SQLite
file, or a PostgreSQL database (each process then is one server replica).

Usage: python -m tests.helpers.race_worker STORE_URL WORKER_NO ID [ID ...]
Prints one JSON line: {"won": [...], "lost": [...]}.
"""

from __future__ import annotations

import asyncio
import json
import sys

from signoff.connect import connect
from signoff.errors import Conflict
from signoff.models import Principal
from signoff.service import ApprovalService


async def main(url: str, worker: int, ids: list[str]) -> None:
    backends = connect(url)
    service = ApprovalService(backends.store, backends.bus, sweep=False)
    await service.start()
    won, lost = [], []
    for i, request_id in enumerate(ids):
        who = Principal(sub=f"approver-{worker}", role="admin")
        decision = "approve" if (worker + i) % 2 else "reject"
        try:
            await service.decide(request_id, who, decision, reason="race")
        except Conflict:
            lost.append(request_id)
        else:
            won.append(request_id)
    await service.aclose()
    print(json.dumps({"won": won, "lost": lost}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
