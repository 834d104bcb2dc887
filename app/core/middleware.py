"""One ASGI middleware for what every request needs: a request id, the write gate
(maintenance mode), metrics, and one JSON access-log line (never with secrets: no headers,
no bodies).

The gate is a callable handed in by app/main.py (app/ops/maintenance.py's flag), so this
layer knows nothing of how the switch is stored.
"""

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PROBLEM_JSON, AppError, Problem
from app.core.metrics import Metrics

access_log = logging.getLogger("vidgen.access")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_AFTER_S = 30
WritesPaused = Callable[[], Awaitable[bool]]


class MaintenanceMode(AppError):
    status, code, title = 503, "maintenance", "Down for maintenance"


REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMiddleware:
    """`writes_paused()` true: writes answer 503 `maintenance`, except to `always_writable`."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        writes_paused: WritesPaused,
        always_writable: frozenset[str],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.writes_paused = writes_paused
        self.always_writable = always_writable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            if (
                scope["method"] in WRITE_METHODS
                and scope["path"] not in self.always_writable
                and await self.writes_paused()
            ):
                await self._refuse_for_maintenance(send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route, method = _route_of(scope), scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.request_seconds.labels(method, route).observe(elapsed)
            user_id = scope["state"].get("user_id")
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "user_id": user_id,
                    }
                )
            )

    async def _refuse_for_maintenance(self, send: Any) -> None:
        error = MaintenanceMode("the service is in maintenance; writes are paused, retry later")
        problem = Problem(title=error.title, status=503, code=error.code, detail=error.detail)
        body = problem.model_dump_json(exclude_none=True).encode()
        headers = [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_S).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
