"""Schemathesis over the whole OpenAPI document, authenticated.

Every operation is fuzzed with schema-valid (positive) and schema-violating (negative) requests
against the real server (`vidgen serve` on 127.0.0.1, dispatching to the Fal simulator), as a
user, or as the admin for /api/admin. No answer may be a 5xx, and every answer must be one the
document declares: its status code, content type and body schema.

The fuzzer found four bugs (a NUL character in a text field was a 500, and three answers
the document did not declare); test_schema_bugs.py pins each fix.
"""

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import hypothesis
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.catalog import service as catalog
from app.fal.simulator.process import SimulatorProcess
from tests.support.apps import AppProcess
from tests.support.factories import ADMIN, ApiUser, create_user
from tests.support.traffic import create_body, wait_all_terminal

MIN_CASES = 1000
# Per operation and generation mode. Operations without inputs (health, metrics, webhook
# without its signature headers) stop after a case; those with inputs carry the count.
MAX_EXAMPLES = 60
MODELS = sorted(m.slug for m in catalog.load_catalog().models)
# Switching maintenance on makes every later write a (documented) 503 by design: it is
# fuzzed last, and switched off again after each of its cases.
MAINTENANCE = "POST /api/admin/maintenance"
EVENTS = "GET /api/videos/{video_id}/events"


# uvicorn's own answer to bytes that do not parse as an HTTP request.
UNPARSABLE = "Invalid HTTP request received."
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(base_url: str, user: ApiUser, video_ids: list[str]) -> tuple[Counter[str], list[str]]:
    """Blocking (requests, Hypothesis): run it in a thread."""
    schemas = [
        schemathesis.openapi.from_url(f"{base_url}/openapi.json"),
        # The operators' routes are a document of their own, behind the admin token.
        schemathesis.openapi.from_url(f"{base_url}/openapi.admin.json", headers=ADMIN),
    ]
    counts: Counter[str] = Counter()
    failures: list[str] = []
    operations = sorted(
        (r.ok() for schema in schemas for r in schema.get_all_operations() if isinstance(r, Ok)),
        key=lambda op: (op.label == MAINTENANCE, op.label),
    )
    for operation in operations:
        auth = ADMIN if operation.path.startswith("/api/admin") else user.auth
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = steer(operation, operation.as_strategy(generation_mode=mode), video_ids)
            try:
                fuzz_one(base_url, operation.label, strategy, auth, counts)
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to negate: an operation without inputs
            except (Exception, BaseExceptionGroup) as failure:  # collect all, then fail
                failures.append(f"{operation.label} [{mode}]: {failure}")
    return counts, failures


def fuzz_one(
    base_url: str, label: str, strategy: Any, auth: dict[str, str], counts: Counter[str]
) -> None:
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a red build is reproducible
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.generate, hypothesis.Phase.shrink],
    )
    @hypothesis.given(case=strategy)
    def run(case: schemathesis.Case[Any]) -> None:
        # A connection of its own per case: after an unhandled error uvicorn closes the
        # connection, and a pooled one would fail the next case for this one's sake.
        response = case.call(headers=auth, timeout=15)
        counts[label] += 1
        if response.status_code == 400 and response.text == UNPARSABLE:
            # Not HTTP at all (a negative case's header line without a colon, a Content-Length
            # that is no number): uvicorn's parser answered it; the app never saw it.
            counts["(refused by the HTTP parser)"] += 1
            return
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        finally:
            if label == MAINTENANCE:
                off = requests.post(
                    f"{base_url}/api/admin/maintenance",
                    json={"enabled": False},
                    headers=ADMIN,
                    timeout=15,
                )
                off.raise_for_status()

    run()


def steer(operation: Any, strategy: Any, video_ids: list[str]) -> Any:
    """Half the cases aim at what exists: real model ids for creates, real videos for
    `{video_id}`. Random strings and uuids alone would only ever meet 404s there."""
    if operation.label == "POST /api/videos":

        def with_model(args: tuple[schemathesis.Case[Any], str, bool]) -> schemathesis.Case[Any]:
            case, model, use = args
            if use and isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = model
            return case

        return st.tuples(strategy, st.sampled_from(MODELS), st.booleans()).map(with_model)
    if "{video_id}" in operation.path:

        def with_video(args: tuple[schemathesis.Case[Any], str, bool]) -> schemathesis.Case[Any]:
            case, video_id, use = args
            if use and case.path_parameters:
                case.path_parameters["video_id"] = video_id
            return case

        return st.tuples(strategy, st.sampled_from(video_ids), st.booleans()).map(with_video)
    return strategy


async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path
) -> None:
    app = AppProcess(database_url, simulator, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=10_000_000)
            # Finished videos to aim `{video_id}` at. Nothing is excluded from the fuzzing:
            # the event stream of an unfinished video runs until it finishes, but fuzzed
            # ids are these finished ones (one event, then the stream ends) or unknown (404).
            videos = []
            for prompt in ("fuzz target", "fuzz target #fail"):
                body = create_body(prompt) | {"prompt": prompt}
                headers = {**user.auth, "Idempotency-Key": str(uuid.uuid4())}
                response = await client.post("/api/videos", json=body, headers=headers)
                assert response.status_code == 202, response.text
                videos.append(response.json()["id"])
            db = await asyncpg.connect(database_url)
            try:
                await wait_all_terminal(db, user.id, len(videos), within=30)
            finally:
                await db.close()
            counts, failures = await asyncio.to_thread(fuzz, app.url, user, videos)
    finally:
        app.stop()
    operations = {label: n for label, n in counts.items() if not label.startswith("(")}
    total = sum(operations.values())
    print(f"\n[figures] schemathesis: {total} cases: {json.dumps(dict(sorted(counts.items())))}")
    assert not failures, "\n\n".join(failures)
    assert total >= MIN_CASES, counts
    assert len(operations) == 14  # every operation of both documents was exercised
