"""Money through the real paths, in random order: every way a balance moves (create, cancel,
Fal's webhook with a video or an error, our deadline, grants, rolls) driven through the API
or the services the workers call, with the ledger audit after every step.

A state machine: hypothesis draws the steps, a small model says what each must do to the
balance and the job, and the real code must agree with it and keep every audit invariant.
"""

import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.db import unit_of_work
from app.fal.results import FalOutcome, provider_error
from app.ops.audit import run_audit
from app.videos import repository, service
from app.videos.models import EventSource, VideoStatus
from tests.support.factories import ADMIN, ApiUser, create_user
from tests.support.helpers import libpq

COPY = service.StoredMedia(
    media_key="videos/x/copy.mp4", poster_key="videos/x/poster.jpg",
    media_content_type="video/mp4", media_size_bytes=1, media_sha256="0" * 64,
    media_width=16, media_height=9, media_duration_s=1.0,
)  # fmt: skip
PRICE = {5: 168, 10: 336}  # Kling 2.0 Master: Fal's $1.40 per 5 s + $0.28/s, + 20 %
ACTIVE = {"pending", "queued", "processing", "canceling"}


@dataclass
class Job:
    id: str
    price: int
    status: str = "pending"
    fal_id: str | None = None
    output: bool = False  # Fal delivered its output; our copy completes the job


@dataclass
class Books:
    """What the ledger must say: the balance, and each job's state."""

    balance: int = 0
    jobs: list[Job] = field(default_factory=list)
    rolled: set[str] = field(default_factory=set)


create = st.tuples(st.just("create"), st.sampled_from([5, 10]))
step = st.one_of(
    create,
    create,
    st.tuples(st.just("grant"), st.integers(1, 400)),
    st.tuples(st.just("roll"), st.sampled_from(["2026-10", "2026-11"])),
    *(
        st.tuples(st.just(action), st.integers(0, 7))
        for action in ("submit", "start", "delivered", "fal_error", "copied", "cancel", "deadline")
    ),
)


async def run_step(
    action: str, arg: Any, books: Books, user: ApiUser, client: httpx.AsyncClient, app: FastAPI
) -> None:
    if action == "create":
        headers = {**user.auth, "Idempotency-Key": str(uuid.uuid4())}
        body = {"model": "kling-v2-master-t2v", "prompt": "a heron", "duration": arg}
        answer = await client.post("/api/videos", json=body, headers=headers)
        if books.balance >= PRICE[arg]:
            assert answer.status_code == 202, answer.text
            books.balance -= PRICE[arg]
            books.jobs.append(Job(answer.json()["id"], PRICE[arg]))
        else:
            assert answer.json()["code"] == "insufficient_credits", answer.text
        return
    if action in {"grant", "roll"}:
        kind, period = (action, arg) if action == "roll" else ("grant", None)
        amount = 50 if action == "roll" else arg
        answer = await client.post(
            "/api/admin/credits",
            json={"user_id": str(user.id), "amount": amount, "kind": kind}
            | ({"period": period} if period else {}),
            headers={**ADMIN, "Idempotency-Key": str(uuid.uuid4())},
        )
        if action == "roll" and period in books.rolled:
            assert answer.json()["code"] == "credit_roll_exists", answer.text
            return
        assert answer.status_code == 201, answer.text
        books.balance += amount
        if period:
            books.rolled.add(period)
        return
    if not books.jobs:
        return
    job = books.jobs[arg % len(books.jobs)]
    video_id = uuid.UUID(job.id)
    sessions = app.state.sessions
    if action == "cancel":
        answer = await client.post(f"/api/videos/{job.id}/cancel", headers=user.auth)
        if job.status in {"pending", "queued"}:
            assert answer.json()["status"] == "canceled", answer.text
            job.status, books.balance = "canceled", books.balance + job.price
        elif job.status in {"processing", "canceling"}:
            assert answer.json()["status"] == "canceling", answer.text
            job.status = "canceling"
        else:
            assert answer.json()["code"] == "video_not_cancelable", answer.text
        return
    if action == "deadline":  # what the reconciler does to a job past JOB_DEADLINE_S
        async with unit_of_work(sessions) as session:
            moved = await service.change_status(
                session, video_id, VideoStatus.FAILED, EventSource.DEADLINE,
                error_code="timeout", error_message="not finished in time",
            )  # fmt: skip
        if job.status in ACTIVE:
            assert moved is not None
            job.status = "canceled" if job.status == "canceling" else "failed"
            books.balance += job.price
            assert moved.status == job.status
        else:
            assert moved is None
        return
    if action in {"submit", "start"}:  # the dispatcher's and the poller's moves
        target = VideoStatus.QUEUED if action == "submit" else VideoStatus.PROCESSING
        values = {"fal_request_id": f"fal-{job.id}"} if action == "submit" else {}
        async with unit_of_work(sessions) as session:
            moved = await service.change_status(
                session, video_id, target, EventSource.DISPATCH, **values
            )
        allowed = {"pending"} if action == "submit" else {"pending", "queued"}
        assert (moved is not None) == (job.status in allowed)
        if moved is not None:
            job.status = target.value
            job.fal_id = job.fal_id or values.get("fal_request_id")
        return
    if action == "copied":  # the finaliser published our copy of the output
        async with unit_of_work(sessions) as session:
            row = await repository.get(session, video_id)
            assert row is not None
            completed = await service.complete_with_media(session, row, COPY)
        if job.output and job.status in {"processing", "canceling"}:
            assert completed is not None and completed.status == "completed"
            job.status = "completed"  # canceling too: Fal delivered, the charge stays
        else:
            assert completed is None
        return
    # A webhook from Fal: the video, or an error.
    if job.fal_id is None:
        return
    outcome = (
        FalOutcome(video_url="https://fal.media/v.mp4", video_metadata={"file_size": 1})
        if action == "delivered"
        else provider_error("the runner crashed")
    )
    driver = await asyncpg.connect(libpq(app.state.settings.require_database_url()))
    try:
        result = await service.finish_by_fal_request(driver, job.fal_id, outcome)
    finally:
        await driver.close()
    if job.status in {"queued", "processing", "canceling"} and not job.output:
        assert result == "applied"
        if action == "delivered":
            job.output = True  # waits for our copy: processing (a canceling job stays so)
            job.status = "canceling" if job.status == "canceling" else "processing"
        else:
            job.status = "canceled" if job.status == "canceling" else "failed"
            books.balance += job.price
    else:
        assert result == "duplicate"


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    credits=st.integers(0, 1000),
    first=st.lists(create, min_size=1, max_size=3),
    steps=st.lists(step, min_size=15, max_size=40),
)
async def test_random_paths_move_money_exactly_as_the_books_say(
    credits: int,
    first: list[tuple[str, Any]],
    steps: list[tuple[str, Any]],
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    user = await create_user(client, credits=credits)
    books = Books(balance=credits)
    for action, arg in first + steps:
        await run_step(action, arg, books, user, client, app)
        balance = await db.fetchval('SELECT "creditBalance" FROM users WHERE id = $1', user.id)
        assert balance == books.balance, (action, arg)
        for job in books.jobs:
            status = await db.fetchval("SELECT status FROM videos WHERE id = $1", uuid.UUID(job.id))
            assert status == job.status, (action, arg, job)
        report = await run_audit(libpq(database_url))
        assert report.ok, report.render()
