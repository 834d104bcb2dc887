"""Domain errors rendered as RFC 9457 problem+json with a stable `code`."""

import logging
from typing import Any, ClassVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    """One field a request got wrong: where (`loc`), what (`msg`), and what it may be."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="where: `body` (or `query`, …), then the field")
    msg: str
    type: str | None = Field(default=None, description="the validator's error type")
    allowed: list[bool | int | float | str] | None = Field(
        default=None, description="the values the field may take, where they are a set"
    )
    max_length: int | None = None


class Problem(BaseModel):
    """The error body of every 4xx/5xx answer."""

    type: str = "about:blank"
    title: str
    status: int
    # A string here; the OpenAPI document narrows it to the `ErrorCode` enum (app/core/openapi.py).
    code: str
    detail: str
    errors: list[FieldError] | None = None
    request_id: str | None = Field(
        default=None, description="also the `X-Request-Id` header; quote it when reporting a 5xx"
    )


class AppError(Exception):
    """Base for every expected failure; subclasses fix `status` and `code`."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors  # per-field detail (`loc`, `msg`, …), when there is a field to name


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class MalformedBody(AppError):
    status, code, title = 400, "malformed_body", "Request body could not be parsed"


class DatabaseUnavailable(AppError):
    status, code, title = 503, "database_unavailable", "Database unavailable"


class RequestInvalid(AppError):
    """A request its schema refuses (FastAPI's validation), answered by the handler below."""

    status, code, title = 422, "validation_error", "Invalid request"


class MethodNotAllowed(AppError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class InternalError(AppError):
    """A bug: never raised on purpose, the answer to any exception nothing else handled."""

    status, code, title = 500, "internal_error", "Internal error"


def error_codes() -> list[str]:
    """Every `code` the API can answer: AppError's and every subclass's. Complete once every
    module that declares errors is imported (the app's routers import them all)."""
    found, pending = set(), [AppError]
    while pending:
        error = pending.pop()
        found.add(error.code)
        pending.extend(error.__subclasses__())
    return sorted(found)


# What asyncpg raises when the server or the socket goes away (class 57: shutdown, restart).
# InternalClientError: a connection that received the server's FATAL "terminating
# connection" while idle is left in an error state until asyncpg sees the socket close;
# a request that checks it out in that window fails with this.
CONNECTION_FAILURES = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,
)


def is_connection_failure(error: BaseException) -> bool:
    """The connection (not the statement) failed: the work may succeed on another one."""
    if isinstance(error, DBAPIError):
        cause = getattr(error.orig, "__cause__", None) or error.orig
        return bool(error.connection_invalidated) or isinstance(cause, CONNECTION_FAILURES)
    return isinstance(error, CONNECTION_FAILURES)


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    request_id: str | None = None,
) -> JSONResponse:
    body = Problem.model_validate(
        {"title": title, "status": status, "code": code, "detail": detail}
        | {"errors": errors, "request_id": request_id}
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting each error's status and code."""
    by_status: dict[int, list[type[AppError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    return {
        status: {
            "description": "; ".join(f"`{e.code}`: {e.title}" for e in group),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status, group in sorted(by_status.items())
    }


def request_id_of(request: Request) -> str | None:
    """The id RequestMiddleware gave this request (app/core/middleware.py)."""
    return getattr(request.state, "request_id", None)


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return problem_response(
            exc.status, exc.code, exc.title, exc.detail, exc.headers,
            errors=exc.errors, request_id=request_id_of(request),
        )  # fmt: skip

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        request_id = request_id_of(request)
        if errors and all(e["type"] == "extra_forbidden" for e in errors):
            # A body field no schema knows: the same answer as a field the model lacks.
            names = ", ".join(repr(e["loc"][-1]) for e in errors)
            return problem_response(
                422, "unsupported_parameter", "Parameter not supported",
                f"unknown field(s) {names}; GET /api/models lists each model's parameters",
                errors=errors, request_id=request_id,
            )  # fmt: skip
        return problem_response(
            422, RequestInvalid.code, RequestInvalid.title, detail,
            errors=errors, request_id=request_id,
        )  # fmt: skip

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        # Only codes of the ErrorCode enum: the rest of 4xx is `bad_request`, of 5xx a bug.
        code = {400: MalformedBody.code, 404: NotFound.code, 405: MethodNotAllowed.code}.get(
            exc.status_code,
            InternalError.code if exc.status_code >= 500 else AppError.code,
        )
        return problem_response(
            exc.status_code, code, str(exc.detail), str(exc.detail),
            dict(exc.headers or {}), request_id=request_id_of(request),
        )  # fmt: skip

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        # Handled here (not left to the server-error middleware) so the client gets a
        # problem+json 503 it can retry, and keeps its connection.
        # A pool timeout (no connection free within DB_POOL_TIMEOUT_S) is answered the same way.
        if is_connection_failure(exc) or isinstance(exc, SQLAlchemyTimeoutError):
            return problem_response(
                503, DatabaseUnavailable.code, DatabaseUnavailable.title,
                "the database is unreachable; retry shortly", {"Retry-After": "5"},
                request_id=request_id_of(request),
            )  # fmt: skip
        logger.error("unhandled database error", exc_info=exc)
        return internal_error_response(request_id_of(request))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The last resort, in Starlette's outermost (server-error) middleware: only what
        # escaped RequestMiddleware arrives here, which answers every route's bug itself,
        # inside the CORS layer (app/core/middleware.py).
        logger.error("unhandled error", exc_info=exc)
        return internal_error_response(request_id_of(request))

    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(OSError, on_database_error)
    app.add_exception_handler(SQLAlchemyTimeoutError, on_database_error)
    # The hot paths' driver errors (the rest arrive wrapped in DBAPIError).
    app.add_exception_handler(asyncpg.PostgresError, on_database_error)
    app.add_exception_handler(asyncpg.InterfaceError, on_database_error)
    app.add_exception_handler(asyncpg.exceptions.InternalClientError, on_database_error)
    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def internal_error_body(request_id: str | None) -> Problem:
    """What a bug answers: no detail (it could leak internals), the id to find its log line."""
    return Problem(
        title=InternalError.title,
        status=InternalError.status,
        code=InternalError.code,
        detail="an unexpected error; it is logged under this request id",
        request_id=request_id,
    )


def internal_error_response(request_id: str | None) -> JSONResponse:
    body = internal_error_body(request_id)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=500, media_type=PROBLEM_JSON
    )
