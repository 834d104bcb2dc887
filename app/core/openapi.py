"""The OpenAPI document, made to say what the handlers and middleware really do: every
validation error is problem+json, every route may meet a database outage, and writes may
meet the write gate (maintenance mode)."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.errors import (
    PROBLEM_JSON,
    AppError,
    DatabaseUnavailable,
    MalformedBody,
    Problem,
    problem_responses,
)
from app.core.limits import HeadersTooLarge, PayloadTooLarge


def _document(responses: dict[str, Any], errors: list[type[AppError]]) -> None:
    """Add problem responses, merging descriptions where the status is already there."""
    for status, entry in problem_responses(*errors).items():
        existing = responses.setdefault(str(status), entry)
        if existing is not entry:
            existing["description"] = f"{existing.get('description', '')}; {entry['description']}"
            existing["content"] = entry["content"] | existing.get("content", {})


def install_problem_openapi(
    app: FastAPI,
    *,
    write_errors: tuple[type[AppError], ...] = (),
    always_writable: frozenset[str] = frozenset(),
    without_database: frozenset[str] = frozenset(),
) -> None:
    """Make the spec say what the handlers and middleware do: validation errors are
    problem+json too, writes may meet `write_errors` (maintenance mode) except on
    `always_writable`, and every route but `without_database` may answer 503."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        problem_ref = {"$ref": "#/components/schemas/Problem"}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        for route, path in schema.get("paths", {}).items():
            for method, operation in path.items():
                extra: list[type[AppError]] = [HeadersTooLarge]
                if "requestBody" in operation:
                    extra.extend((MalformedBody, PayloadTooLarge))
                if route not in without_database:
                    extra.append(DatabaseUnavailable)
                if method in {"post", "put", "patch", "delete"} and route not in always_writable:
                    extra.extend(write_errors)
                _document(operation["responses"], extra)
                for parameter in operation.get("parameters", []):
                    if parameter.get("name") == "Idempotency-Key":
                        # Optional in the signature only so that missing is our 400, not a 422.
                        parameter["required"] = True
                response = operation.get("responses", {}).get("422")
                if response and "problem+json" not in str(response.get("content")):
                    response["content"] = {PROBLEM_JSON: {"schema": problem_ref}}
                    response["description"] = (
                        response.get("description", "") + "; `validation_error`: Invalid request"
                    ).lstrip("; ")
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
