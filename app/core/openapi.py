"""The OpenAPI documents, made for client generators and made to say what the handlers and
middleware really do.

Two documents: `/openapi.json` (what a frontend calls) and `/openapi.admin.json` (the
operators' routes, behind the admin token); routes under `hidden` prefixes are in neither.
Each operation is named `<tag>-<action>` and tagged by its domain; every validation error is
problem+json, every route may meet a bug (500) and a database outage (503), writes may meet
the write gate (maintenance mode), and `Problem.code` is the enum of every code there is.

Core knows no domain: app/main.py hands in the layout (`OpenApiLayout`).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts

from app.core.errors import (
    PROBLEM_JSON,
    AppError,
    DatabaseUnavailable,
    InternalError,
    MalformedBody,
    Problem,
    RequestInvalid,
    Unauthorized,
    error_codes,
    problem_responses,
)
from app.core.idempotency.http import IDEMPOTENCY_KEY_SCHEMA
from app.core.limits import HeadersTooLarge, PayloadTooLarge

SCHEMAS = "#/components/schemas/"
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
# Response headers, declared so generated clients type them (app/core/middleware.py sets the
# request id on every answer; 429 and 503 say when to retry; a keyed replay says so).
REQUEST_ID = {
    "description": "names the request's log line; sent back when the client sets one",
    "schema": {"type": "string"},
}
RETRY_AFTER = {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
REPLAYED = {
    "description": "`true` when this is the stored answer to an earlier request with the key",
    "schema": {"type": "string", "enum": ["true"]},
}


@dataclass(frozen=True)
class OpenApiLayout:
    """What the documents hold and how they name things; paths are FastAPI path formats."""

    description: str
    servers: list[str]
    admin_prefix: str = "/api/admin/"
    # In neither document: machine-to-machine routes (webhooks, metrics, signed media).
    hidden: tuple[str, ...] = ()
    # Route (function) name ➜ `<tag>-<action>`, where the name and tag do not say it.
    operation_ids: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)  # tag ➜ description
    # Named string enums, and the `Schema.property` each narrows (a property typed `str`
    # in code whose values are a closed set).
    enums: Mapping[str, Iterable[str]] = field(default_factory=dict)
    narrow: Mapping[str, str] = field(default_factory=dict)
    # operationId ➜ {example name: {"summary", "value"}} for its JSON request body.
    examples: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # What every authenticated operation may answer (its `security` says it is one).
    security_errors: tuple[type[AppError], ...] = (Unauthorized,)
    write_errors: tuple[type[AppError], ...] = ()
    always_writable: frozenset[str] = frozenset()
    without_database: frozenset[str] = frozenset()

    def audience(self, path: str) -> str | None:
        """Which document holds the route at `path`: public, admin, or None (neither)."""
        if path.startswith(self.hidden):
            return None
        return "admin" if path.startswith(self.admin_prefix) else "public"


def operation_id(name: str, tags: list[str], overrides: Mapping[str, str]) -> str:
    """`<tag>-<action>`: the override, else the route's first tag and its function name
    without the tag's words (`create_video` under `videos` ➜ `videos-create`)."""
    if name in overrides:
        return overrides[name]
    tag = str(tags[0]) if tags else "default"
    words = [w for w in name.split("_") if w not in {tag, tag.removesuffix("s")}]
    return f"{tag}-{'-'.join(words) or 'get'}"


def _document(responses: dict[str, Any], errors: list[type[AppError]]) -> None:
    """Add problem responses, merging descriptions where the status is already there."""
    for status, entry in problem_responses(*errors).items():
        existing = responses.setdefault(str(status), entry)
        if existing is not entry:
            if entry["description"] not in existing.get("description", ""):
                existing["description"] = (
                    f"{existing.get('description', '')}; {entry['description']}".lstrip("; ")
                )
            existing["content"] = entry["content"] | existing.get("content", {})


def _absent_not_null(schema: dict[str, Any]) -> None:
    """Optional fields that are left out when empty (`exclude_none`), never sent as null:
    typed without the null, so a generated client reads `errors?: FieldError[]`."""
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        variants = prop.get("anyOf", [])
        if name in required or {"type": "null"} not in variants:
            continue
        rest = [v for v in variants if v != {"type": "null"}]
        del prop["anyOf"]
        prop.pop("default", None)
        prop.update(rest[0] if len(rest) == 1 else {"anyOf": rest})


def _pascal(operation: str) -> str:
    return "".join(word.capitalize() for word in operation.split("-"))


class _Builder:
    def __init__(self, app: FastAPI, layout: OpenApiLayout) -> None:
        self.app = app
        self.layout = layout

    def build(self, audience: str) -> dict[str, Any]:
        layout = self.layout
        contexts = [
            c
            for c in iter_route_contexts(self.app.routes)
            if isinstance(c.path_format, str) and layout.audience(c.path_format) == audience
        ]
        names = {
            (c.path_format, method.lower()): operation_id(
                str(c.name), list(getattr(c, "tags", [])), layout.operation_ids
            )
            for c in contexts
            for method in c.methods or ()
        }
        title = self.app.title if audience == "public" else f"{self.app.title} admin"
        schema = get_openapi(
            title=title,
            version=self.app.version,
            description=layout.description,
            servers=[{"url": url} for url in layout.servers],
            routes=contexts,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        self._problem_schemas(components)
        used_tags: dict[str, None] = {}
        for route, path in schema.get("paths", {}).items():
            for method, operation in path.items():
                name = names[(route, method)]
                operation["operationId"] = name
                tag = name.split("-", 1)[0]
                operation["tags"] = [tag]
                used_tags[tag] = None
                self._errors(route, method, operation)
                self._parameters(operation)
                self._headers(operation)
                self._request_body(name, operation, components)
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        self._narrow(components)
        schema["tags"] = [
            {"name": tag} | ({"description": layout.tags[tag]} if tag in layout.tags else {})
            for tag in used_tags
        ]
        return schema

    def _problem_schemas(self, components: dict[str, Any]) -> None:
        problem = Problem.model_json_schema(ref_template=SCHEMAS + "{model}")
        components.update(problem.pop("$defs", {}))
        problem["properties"]["code"] = {"$ref": f"{SCHEMAS}ErrorCode"}
        components["Problem"] = problem
        for name in ("Problem", "FieldError"):
            _absent_not_null(components[name])
        components["ErrorCode"] = {
            "type": "string",
            "title": "ErrorCode",
            "description": "Every `code` a problem+json answer can carry.",
            "enum": error_codes(),
        }

    def _errors(self, route: str, method: str, operation: dict[str, Any]) -> None:
        layout = self.layout
        responses = operation["responses"]
        extra: list[type[AppError]] = [HeadersTooLarge, InternalError]
        if operation.get("security"):
            extra.extend(layout.security_errors)
        if "requestBody" in operation:
            extra.extend((MalformedBody, PayloadTooLarge))
        if route not in layout.without_database:
            extra.append(DatabaseUnavailable)
        if method in WRITE_METHODS and route not in layout.always_writable:
            extra.extend(layout.write_errors)
        if "422" in responses or "requestBody" in operation:
            if PROBLEM_JSON not in responses.get("422", {}).get("content", {}):
                responses.pop("422", None)  # FastAPI's HTTPValidationError: ours is a problem
            extra.append(RequestInvalid)
        _document(responses, extra)

    def _parameters(self, operation: dict[str, Any]) -> None:
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "Idempotency-Key":
                parameter["required"] = True
                parameter["schema"] = dict(IDEMPOTENCY_KEY_SCHEMA)

    def _headers(self, operation: dict[str, Any]) -> None:
        keyed = any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", []))
        for status, response in operation["responses"].items():
            headers = response.setdefault("headers", {})
            headers["X-Request-Id"] = REQUEST_ID
            if status in {"429", "503"}:
                headers["Retry-After"] = RETRY_AFTER
            if keyed and status.startswith("2"):
                headers["Idempotent-Replayed"] = REPLAYED

    def _request_body(
        self, name: str, operation: dict[str, Any], components: dict[str, Any]
    ) -> None:
        content = operation.get("requestBody", {}).get("content", {})
        if examples := self.layout.examples.get(name):
            content.setdefault("application/json", {})["examples"] = dict(examples)
        form = content.get("multipart/form-data")
        if form is None:
            return
        # FastAPI names a form body `Body_<function>_<path>_<method>`: give it a stable name,
        # and its files the `format: binary` generators turn into Blob / File.
        ref = form["schema"].get("$ref", "")
        old = ref.removeprefix(SCHEMAS)
        if old not in components:
            return
        new = f"{_pascal(name)}Body"
        body = components.pop(old)
        body["title"] = new
        for prop in body.get("properties", {}).values():
            if (
                prop.get("contentMediaType") == "application/octet-stream"
                or prop.get("format") == "binary"
            ):
                prop.pop("contentMediaType", None)
                prop.update(type="string", format="binary")
        components[new] = body
        form["schema"] = {"$ref": SCHEMAS + new}

    def _narrow(self, components: dict[str, Any]) -> None:
        layout = self.layout
        for target, enum in layout.narrow.items():
            model, prop = target.split(".")
            properties = components.get(model, {}).get("properties", {})
            if prop in properties:
                description = properties[prop].get("description")
                properties[prop] = {"$ref": SCHEMAS + enum} | (
                    {"description": description} if description else {}
                )
                components.setdefault(
                    enum, {"type": "string", "title": enum, "enum": list(layout.enums[enum])}
                )


def install_openapi(
    app: FastAPI, layout: OpenApiLayout, *, admin_guard: Callable[..., Any]
) -> None:
    """`/openapi.json` (and `/docs`) from the public routes; `/openapi.admin.json` from the
    admin routes, for callers that pass `admin_guard` (the admin token)."""
    builder = _Builder(app, layout)
    admin_schema: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            app.openapi_schema = builder.build("public")
        return app.openapi_schema

    def openapi_admin() -> dict[str, Any]:
        if not admin_schema:
            admin_schema.update(builder.build("admin"))
        return admin_schema

    async def admin_document() -> JSONResponse:
        return JSONResponse(openapi_admin())

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.openapi_admin = openapi_admin
    app.add_api_route(
        "/openapi.admin.json",
        admin_document,
        methods=["GET"],
        dependencies=[Depends(admin_guard)],
        include_in_schema=False,
    )
