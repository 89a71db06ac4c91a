"""A webhook receiver for bench/deliveries.py, in a process of its own (so that it does not
share the sender's event loop): verifies every POST with the ``standardwebhooks`` reference
library, counts the verified ones, and answers ``GET /count``.

    HOOK_SECRET=whsec_… python bench/_webhook_receiver.py PORT
"""

from __future__ import annotations

import os
import sys

import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def main() -> None:
    port = int(sys.argv[1])
    webhook = Webhook(os.environ["HOOK_SECRET"])
    seen: set[str] = set()
    counts = {"verified": 0, "refused": 0}

    async def hook(request: Request) -> Response:
        try:
            webhook.verify(await request.body(), dict(request.headers))
        except Exception:
            counts["refused"] += 1
            return Response(status_code=400)
        # at least once: a delivery sent again has the same webhook-id, counted once
        seen.add(request.headers["webhook-id"])
        counts["verified"] = len(seen)
        return Response(status_code=204)

    async def count(_: Request) -> Response:
        return JSONResponse(counts)

    app = Starlette(
        routes=[Route("/hook", hook, methods=["POST"]), Route("/count", count, methods=["GET"])]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
