"""Headers an attacker controls, fuzzed: `Authorization` (API-key and JWT-shaped tokens,
garbage, the wrong scheme), `Idempotency-Key` and `Last-Event-ID`. Every answer is a
documented 4xx problem (or a success for a valid request), never a 500.

schemathesis (test_schema_fuzz.py) covers the headers the documents declare; the bearer
token is a security scheme it does not generate, so it is driven here."""

import base64
import json
import uuid
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from app.core.config import Settings
from tests.support.apps import make_settings
from tests.support.factories import create_user
from tests.support.jobs import T2V

CASES = 150
# Header values travel as latin-1; anything else is refused by the client before sending.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300)
b64 = st.binary(max_size=200).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())
header_json = st.dictionaries(
    st.sampled_from(["alg", "kid", "typ", "sub", "exp", "iss", "aud", "nbf"]),
    st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans()),
).map(lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode())
jwt_like = st.tuples(st.one_of(header_json, b64), st.one_of(header_json, b64), b64).map(".".join)
authorization = st.one_of(
    header_text,
    st.builds(lambda t: f"Bearer {t}", header_text),
    st.builds(lambda t: f"Bearer {t}", jwt_like),
    st.builds(lambda t: f"Basic {t}", b64),
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """JWT sign-in on, so JWT-shaped tokens reach the verifier."""
    return make_settings(database_url, auth_jwt_secret="x" * 40, auth_issuer="https://idp.test")


SEEN: Counter[int] = Counter()


@examples(
    max_examples=CASES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(token=authorization, key=header_text, last_event_id=header_text)
async def test_no_header_value_makes_a_500(
    token: str, key: str, last_event_id: str, app: FastAPI, client: httpx.AsyncClient
) -> None:
    if not hasattr(app.state, "fuzz_target"):  # one user and video for every example
        user = await create_user(client, credits=100_000)
        created = await client.post(
            "/api/videos",
            json={"model": T2V, "prompt": "fuzz target"},
            headers={**user.auth, "Idempotency-Key": str(uuid.uuid4())},
        )
        app.state.fuzz_target = (user, created.json()["id"])
    user, video_id = app.state.fuzz_target
    # As bytes: httpx sends str headers as ASCII only; latin-1 is what HTTP/1.1 carries.
    token_b, key_b, last_b = (v.encode("latin-1") for v in (token, key, last_event_id))
    answers = [
        await client.get("/api/credits", headers={"Authorization": token_b}),
        await client.post(
            "/api/videos",
            json={"model": T2V, "prompt": "x"},
            headers={"Authorization": token_b, "Idempotency-Key": key_b},
        ),
        await client.post(
            "/api/videos",
            json={"model": T2V, "prompt": "x", "duration": 999},  # refused: nothing charged
            headers={**user.auth, "Idempotency-Key": key_b},
        ),
        # A stranger's token on the owner's video: never a stream that stays open here.
        await client.get(
            f"/api/videos/{video_id}/events",
            headers={"Authorization": token_b, "Last-Event-ID": last_b},
        ),
    ]
    for answer in answers:
        SEEN[answer.status_code] += 1
        assert answer.status_code < 500, (answer.request.headers, answer.text)
        if answer.status_code >= 400:
            assert answer.headers["content-type"].startswith("application/problem+json")


def test_header_fuzz_figures() -> None:
    """Runs after the fuzz (same module, in order): what the cases were answered."""
    assert sum(SEEN.values()) >= 4 * 50, SEEN  # the fuzz above ran
    print(f"\n[figures] header fuzz: {sum(SEEN.values())} requests, {dict(sorted(SEEN.items()))}")
