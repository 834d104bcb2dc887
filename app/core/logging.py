"""Logs a collector can parse: one JSON object per line on stderr.

Every line has `timestamp` (ISO 8601, UTC), `level`, `logger` and `message`; a line logged
while a request is served also has its `request_id` (`current_request_id`, set by
RequestMiddleware in app/core/middleware.py), and an exception is one `exception` string (its
traceback's line breaks escaped, so still one line). uvicorn's own loggers get the same
formatter through `log_config()`, which `vidgen serve` hands to uvicorn.

python-json-logger rather than structlog: this code, uvicorn, SQLAlchemy and httpx all log
through the standard library, and a `logging.Formatter` is all it takes to make every one of
their lines JSON; structlog would add a second logging pipeline to bridge back into it.

Nothing here logs headers, bodies or query strings: uvicorn's access line (off by default,
the app writes its own) has its query string cut, since a signed media URL carries `sig`.
"""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

# The id of the request being served; None outside a request (start-up, the reconciler).
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
ACCESS_LOGGER = "vidgen.access"
# Extra attributes loggers attach for their own console output, not for a collector.
DROPPED_EXTRAS = frozenset({"color_message"})
# The formatted traceback (one string: json escapes its line breaks) and stack.
RENAMED = {"exc_info": "exception", "stack_info": "stack"}


class JsonFormatter(BaseJsonFormatter):
    """timestamp, level, logger, message, request_id, then any `extra=` fields."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        extras: dict[str, Any] = {}
        super().add_fields(extras, record, message_dict)  # `extra=` fields, exc_info
        for theirs, ours in RENAMED.items():
            if theirs in extras:
                extras[ours] = extras.pop(theirs)
        moment = datetime.fromtimestamp(record.created, UTC)
        log_data["timestamp"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        log_data["message"] = record.message
        if (request_id := current_request_id.get()) is not None:
            log_data["request_id"] = request_id
        if record.name == ACCESS_LOGGER and record.message.startswith("{"):
            # The access line's message is its fields as JSON (app/core/middleware.py).
            log_data.update(json.loads(record.message))
            log_data["message"] = "request"
        for name, value in extras.items():
            if name not in DROPPED_EXTRAS:
                log_data.setdefault(name, value)


class DropQueryString(logging.Filter):
    """uvicorn's access line without the query string (signed media URLs carry `sig`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn logs (client address, method, path with query, HTTP version, status).
        if isinstance(record.args, tuple) and len(record.args) == 5:
            address, method, path, version, status = record.args
            record.args = (address, method, str(path).split("?", 1)[0], version, status)
        return True


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn's `log_config`: every logger, uvicorn's
    and the libraries' (at WARNING) as well as ours, writes JSON lines to stderr."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "json"}
    ours = {"handlers": ["stderr"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"drop_query_string": {"()": DropQueryString}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": handler,
            "access": {**handler, "filters": ["drop_query_string"]},
        },
        "loggers": {
            "uvicorn": ours,
            "uvicorn.error": {"level": level},
            "uvicorn.access": {**ours, "handlers": ["access"]},
            "vidgen": ours,
            "app": ours,
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def configure_logging() -> None:
    """Our loggers as JSON lines on stderr, unless already so (uvicorn applied `log_config`).

    Idempotent: safe to call from every create_app(). Leaves the root logger to whoever runs
    the app (uvicorn's `log_config`, or pytest).
    """
    handler: logging.Handler | None = None
    for name in ("vidgen", "app"):
        logger = logging.getLogger(name)
        if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
            continue
        if handler is None:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
