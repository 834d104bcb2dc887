"""One ASGI middleware for what every request needs: a request id, the write gate
(maintenance mode), metrics, one JSON access-log line (never with secrets: no headers,
no bodies), and a problem+json 500 for any exception a route lets escape.

It sits inside CORSMiddleware (app/main.py), so even a bug's answer carries the CORS headers
and the request id a browser needs to read and report it: Starlette's own last-resort handler
runs outside every user middleware.

The gate is a callable handed in by app/main.py (app/ops/maintenance.py's flag), so this
layer knows nothing of how the switch is stored.
"""

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PROBLEM_JSON, AppError, Problem, internal_error_body
from app.core.logging import current_request_id
from app.core.metrics import Metrics

logger = logging.getLogger(__name__)
access_log = logging.getLogger("vidgen.access")
QUIET_ROUTES = frozenset({"/livez", "/readyz"})
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
        # Every line logged while serving this request carries its id (app/core/logging.py).
        request_id_token = current_request_id.set(request_id)
        status = 500
        responding = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                status, responding = message["status"], True
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
                await self._refuse_for_maintenance(send_with_id, request_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception:
            if responding:  # a streamed body broke off: there is no answer left to give
                raise
            logger.exception("unhandled error (request %s)", request_id)
            await _send_problem(send_with_id, internal_error_body(request_id))
        finally:
            elapsed = time.perf_counter() - started
            route, method = _route_of(scope), scope["method"]
            self.metrics.observe_request(method, route, status, elapsed)
            user_id = scope["state"].get("user_id")
            # Probes arrive every few seconds from every kubelet: counted, not logged (a
            # failing one still is, with its status).
            if route not in QUIET_ROUTES or status >= 400:
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "user_id": user_id,
                    },
                )
            current_request_id.reset(request_id_token)

    async def _refuse_for_maintenance(self, send: Send, request_id: str) -> None:
        error = MaintenanceMode("the service is in maintenance; writes are paused, retry later")
        problem = Problem(
            title=error.title, status=503, code=error.code, detail=error.detail,
            request_id=request_id,
        )  # fmt: skip
        await _send_problem(send, problem, [(b"retry-after", str(RETRY_AFTER_S).encode())])


async def _send_problem(
    send: Send, problem: Problem, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = problem.model_dump_json(exclude_none=True).encode()
    await send({
        "type": "http.response.start",
        "status": problem.status,
        "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            *(headers or []),
        ],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})
