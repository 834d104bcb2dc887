"""Logs as JSON lines on stderr: the access log writes ready-made JSON, the rest is wrapped."""

import json
import logging
import sys


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == "vidgen.access":
            return message  # already one JSON object
        entry = {"level": record.levelname.lower(), "logger": record.name, "message": message}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging() -> None:
    """Idempotent: safe to call from every create_app()."""
    root = logging.getLogger("vidgen")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    for name in ("app",):
        app_logger = logging.getLogger(name)
        app_logger.addHandler(handler)
        app_logger.setLevel(logging.INFO)
        app_logger.propagate = False
