"""A webhook receiver in a process of its own: verifies each POST with ``standardwebhooks``
and appends the event to a file (``python -m tests.delivery.receiver PORT FILE``)."""

from __future__ import annotations

import json
import os
import sys

import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    webhook = Webhook(os.environ["HOOK_SECRET"])

    async def hook(request: Request) -> Response:
        event = webhook.verify(await request.body(), dict(request.headers))
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
