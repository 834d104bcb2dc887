"""The OpenAPI documents are the contract frontends generate clients from: complete, typed for
generators, and split between the public document and the admin one."""

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from app.core.errors import AppError, error_codes
from app.main import create_app
from tests.support.apps import make_settings
from tests.support.factories import ADMIN, create_user

Document = dict[str, Any]
OPERATION_ID = re.compile(r"^[a-z]+-[a-z-]+$")
# Properties (and parameters) of these names are closed sets: an enum, never a bare string.
CLOSED_SETS = {"status", "kind", "code"}
# Machine-to-machine routes, in neither document.
HIDDEN = ("/api/webhooks/", "/metrics", "/media/")
PUBLIC_OPERATIONS = {
    "videos-create",
    "videos-quote",
    "videos-list",
    "videos-get",
    "videos-cancel",
    "videos-events",
    "uploads-create",
    "credits-list",
    "models-list",
    "health-check",
}
ADMIN_OPERATIONS = {"users-create", "credits-add", "maintenance-switch"}
# Codes the shared handlers and base classes answer without a route declaring them.
UNDECLARED = {"bad_request", "not_found", "invalid_video_request", "method_not_allowed"}


@pytest.fixture(scope="module")
def documents() -> tuple[Document, Document]:
    app = create_app(make_settings("postgres://unused/unused"))
    return app.openapi(), app.state.openapi_admin()


def operations(document: Document) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def all_error_classes(base: type[AppError] = AppError) -> set[type[AppError]]:
    found = set()
    for sub in base.__subclasses__():
        found |= {sub} | all_error_classes(sub)
    return found


def undocumented_routes_codes() -> set[str]:
    """The codes of routes in neither document (the webhook, signed media): declared in
    their `responses`, or raised by errors defined beside them."""
    app = create_app(make_settings("postgres://unused/unused"))
    codes: set[str] = set()
    for route in iter_route_contexts(app.routes):
        path = str(route.path_format)
        if not isinstance(route.original_route, APIRoute):
            continue
        if route.include_in_schema and not path.startswith(HIDDEN):
            continue
        codes |= set(re.findall(r"`([a-z_]+)`", json.dumps(route.responses)))
        module = route.endpoint.__module__ if route.endpoint else None
        codes |= {e.code for e in all_error_classes() if e.__module__ == module}
    return codes


def test_each_route_is_in_its_document_and_only_there(documents: tuple[Document, Document]) -> None:
    public, admin = documents
    app = create_app(make_settings("postgres://unused/unused"))
    expected: dict[str, set[tuple[str, str]]] = {"public": set(), "admin": set()}
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        path = str(route.path_format)
        if path.startswith(HIDDEN):
            continue
        audience = "admin" if path.startswith("/api/admin/") else "public"
        expected[audience] |= {(path, m.lower()) for m in route.methods - {"HEAD"}}
    assert {(p, m) for p, m, _ in operations(public)} == expected["public"]
    assert {(p, m) for p, m, _ in operations(admin)} == expected["admin"]
    assert expected["public"] and expected["admin"]
    for document in (public, admin):
        assert not [p for p in document["paths"] if p.startswith(HIDDEN)]
    # Admin-only bodies stay out of the public client.
    assert not {"CreditGrant", "UserCreate", "UserCreated"} & set(public["components"]["schemas"])


def test_operation_ids_are_tag_dash_action_and_unique(
    documents: tuple[Document, Document],
) -> None:
    public, admin = documents
    ids = [op["operationId"] for doc in documents for _, _, op in operations(doc)]
    assert all(OPERATION_ID.match(i) for i in ids), ids
    assert len(ids) == len(set(ids)), ids
    assert {op["operationId"] for _, _, op in operations(public)} >= PUBLIC_OPERATIONS
    assert {op["operationId"] for _, _, op in operations(admin)} >= ADMIN_OPERATIONS
    for document in documents:
        tags = [t["name"] for t in document["tags"]]
        for _, _, operation in operations(document):
            assert operation["tags"] == [operation["operationId"].split("-")[0]]
            assert operation["tags"][0] in tags


def _is_enum(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return _is_enum(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if "anyOf" in schema or "oneOf" in schema:
        variants = [v for v in schema.get("anyOf", schema.get("oneOf")) if v != {"type": "null"}]
        return all(_is_enum(v, components) for v in variants)
    # An HTTP status (Problem.status) is a number, not a closed set of words.
    return "enum" in schema or "const" in schema or schema.get("type") == "integer"


def _objects(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def test_closed_sets_are_enums_not_strings(documents: tuple[Document, Document]) -> None:
    for document in documents:
        components = document["components"]["schemas"]
        for node in _objects(document):
            for name, schema in node.get("properties", {}).items():
                if name in CLOSED_SETS and isinstance(schema, dict):
                    assert _is_enum(schema, components), (node.get("title"), name, schema)
            if node.get("in") == "query" and node.get("name") in CLOSED_SETS:
                assert _is_enum(node["schema"], components), node
    public = documents[0]["components"]["schemas"]
    assert public["VideoStatus"]["enum"] and public["CreditKind"]["enum"]
    assert public["ModelKind"]["enum"] == ["text-to-video", "image-to-video"]


def test_error_code_is_one_enum_of_every_code(documents: tuple[Document, Document]) -> None:
    for document in documents:
        schemas = document["components"]["schemas"]
        codes = schemas["ErrorCode"]["enum"]
        assert codes == error_codes()
        assert set(codes) == {AppError.code} | {e.code for e in all_error_classes()}
        assert {"internal_error", "validation_error", "unsupported_parameter"} <= set(codes)
        problem = schemas["Problem"]["properties"]
        assert problem["code"] == {"$ref": "#/components/schemas/ErrorCode"}
        assert problem["errors"]["items"] == {"$ref": "#/components/schemas/FieldError"}
        assert "null" not in json.dumps(problem["errors"])  # absent when empty, never null
        assert {"loc", "msg"} <= set(schemas["FieldError"]["required"])


def test_every_operation_documents_its_errors(documents: tuple[Document, Document]) -> None:
    for document in documents:
        for path, method, operation in operations(document):
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert [s for s in responses if s.startswith("2")], f"{where}: no success response"
            assert "`internal_error`" in responses["500"]["description"], where
            assert "503" in responses, where
            if operation.get("security"):
                assert "`unauthorized`" in responses["401"]["description"], where
            if "requestBody" in operation:
                assert "`malformed_body`" in responses["400"]["description"], where
                assert "`validation_error`" in responses["422"]["description"], where
                assert "`payload_too_large`" in responses["413"]["description"], where
            for status, response in responses.items():
                # /api/health's 503 is its own status document, for load balancers.
                if status.startswith("2") or (path, status) == ("/api/health", "503"):
                    continue
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (where, status)

    text = json.dumps(documents)
    undeclared = UNDECLARED | undocumented_routes_codes()
    for error in all_error_classes():
        if error.code not in undeclared:
            assert f"`{error.code}`" in text, f"error code {error.code} is not documented"
    assert "HTTPValidationError" not in text


def test_shapes_a_generator_needs(documents: tuple[Document, Document]) -> None:
    public, _ = documents
    schemas = public["components"]["schemas"]
    assert public["info"]["description"]
    assert public["servers"] == [{"url": make_settings("postgres://unused/unused").public_base_url}]
    assert not [name for name in schemas if name.startswith("Body_")]

    create = public["paths"]["/api/videos"]["post"]
    (key,) = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["required"] is True
    assert key["schema"]["type"] == "string" and "anyOf" not in key["schema"]

    upload = public["paths"]["/api/uploads"]["post"]["requestBody"]["content"]
    ref = upload["multipart/form-data"]["schema"]["$ref"]
    body = schemas[ref.rsplit("/", 1)[-1]]
    assert body["title"] == "UploadsCreateBody"
    assert body["properties"]["file"] == body["properties"]["file"] | {
        "type": "string",
        "format": "binary",
    }

    for path in ("/api/videos", "/api/videos/quote"):
        examples = public["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert {"text-to-video", "image-to-video"} <= set(examples["examples"])


async def test_the_admin_document_needs_the_admin_token(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    assert (await client.get("/openapi.admin.json")).status_code == 401
    as_user = await client.get("/openapi.admin.json", headers=user.auth)
    assert as_user.status_code == 403 and as_user.json()["code"] == "forbidden"
    document = await client.get("/openapi.admin.json", headers=ADMIN)
    assert document.status_code == 200
    assert document.json()["paths"] and all(
        p.startswith("/api/admin/") for p in document.json()["paths"]
    )

    public = await client.get("/openapi.json")
    assert public.status_code == 200
    assert not [p for p in public.json()["paths"] if p.startswith("/api/admin")]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
