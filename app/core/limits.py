"""Size limits at the ASGI edge, before authentication and before a body is read whole.

A request whose headers are too many or too large is answered 431; one whose body is larger
than its route allows is answered 413 `payload_too_large`: at once when Content-Length says
so (the body is never read), or as soon as the bytes received pass the limit (chunked
bodies). Nothing behind this middleware ever holds more than a limit's worth of one body.
"""

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PROBLEM_JSON, AppError, Problem

# A multipart upload carries its boundaries and part headers beside the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Request body too large"


class HeadersTooLarge(AppError):
    status, code, title = 431, "request_header_fields_too_large", "Request headers too large"


class _BodyOverLimit(Exception):
    """Raised into the app from `receive` once a body passes its limit."""


@dataclass(frozen=True)
class Limits:
    json_bytes: int
    header_bytes: int
    header_count: int
    # Path ➜ its own body limit (uploads, webhooks); every other path gets `json_bytes`.
    by_path: dict[str, int]

    def body_limit(self, path: str) -> int:
        return self.by_path.get(path, self.json_bytes)


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        size = sum(len(name) + len(value) for name, value in headers)
        if len(headers) > limits.header_count or size > limits.header_bytes:
            await _refuse(send, HeadersTooLarge(
                f"at most {limits.header_count} headers of {limits.header_bytes} bytes in all"
            ))  # fmt: skip
            return
        limit = limits.body_limit(scope["path"])
        named = dict(headers)
        if b"transfer-encoding" not in named and b"content-length" not in named:
            await self.app(scope, receive, send)  # no body at all
            return
        declared = named.get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await _refuse(send, _too_large(limit))
                return
            # The server delivers no more than a declared length: nothing left to count.
            await self.app(scope, receive, send)
            return

        received = 0
        over = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _BodyOverLimit
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # whatever the app made of the interrupted body, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _refuse(send, _too_large(limit))
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _BodyOverLimit:
            if not started:
                await _refuse(send, _too_large(limit))


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"this route takes bodies of at most {limit} bytes")


async def _refuse(send: Send, error: AppError) -> None:
    problem = Problem(title=error.title, status=error.status, code=error.code, detail=error.detail)
    body = problem.model_dump_json(exclude_none=True).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        # The rest of the body is never read: the connection cannot carry another request.
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
