"""The OpenAPI document is the contract frontends generate clients from: it must be complete."""

import json
from collections.abc import Iterable, Iterator

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.core.errors import AppError
from app.main import create_app
from tests.support.apps import make_settings


def all_error_classes(base: type[AppError] = AppError) -> set[type[AppError]]:
    found = set()
    for sub in base.__subclasses__():
        found |= {sub} | all_error_classes(sub)
    return found


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, including those of included routers (FastAPI nests them lazily)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from api_routes(router.routes)


def test_every_endpoint_body_response_and_error_code_is_documented() -> None:
    app = create_app(make_settings("postgres://unused/unused"))
    spec = app.openapi()
    paths = spec["paths"]
    routes = list(api_routes(app.routes))
    assert routes
    for route in routes:
        for method in route.methods - {"HEAD"}:
            operation = paths[route.path_format][method.lower()]
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success, f"{method} {route.path}: no success response"
            if route.body_field is not None:
                assert "requestBody" in operation, f"{method} {route.path}: body undocumented"
            for code, response in responses.items():
                # /api/health's 503 is its own status document, for load balancers.
                if not code.startswith("2") and route.path != "/api/health":
                    assert "application/problem+json" in response["content"], (route.path, code)

    text = json.dumps(spec)
    # Codes that only the shared handlers raise are documented generically or not per route.
    generic = {"bad_request", "not_found", "unauthorized", "forbidden", "invalid_video_request"}
    for error in all_error_classes():
        if error.code not in generic:
            assert f"`{error.code}`" in text, f"error code {error.code} is not documented"
    assert "HTTPValidationError" not in text
    problem = spec["components"]["schemas"]["Problem"]
    assert {"status", "code", "detail", "title"} <= set(problem["properties"])
