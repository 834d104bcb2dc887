"""Fal's failures as fal-client really reports them, and the refund rule of each ending.

Real uvicorn, real fal-client, the simulator. Each terminal reason has its `error.code`:
content_policy_violation, invalid_input, provider_error (refunded), timeout (our deadline,
refunded), canceled (refunded); a job canceled while Fal runs it is refunded only if Fal's
final word is not a video.
"""

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.fal.simulator.process import SimulatorProcess
from app.ops.audit import run_audit
from tests.support.apps import AppProcess, wait_until
from tests.support.factories import create_user
from tests.support.jobs import I2V, IMAGE, create, finished, history, ledger

KLING_5S = 168  # Kling 2.0 Master, 5 s: $1.40 + 20 % margin


async def video_row(db: asyncpg.Connection, video_id: str) -> asyncpg.Record:
    row = await db.fetchrow(
        'SELECT status, "falRequestId", "pollAttempts", "submitAttempts" FROM videos WHERE id = $1',
        uuid.UUID(video_id),
    )
    assert row is not None
    return row


@pytest.mark.parametrize("delivery", ["webhook", "poll"])
async def test_each_fal_failure_fails_with_its_reason_and_refunds_once(
    delivery: str,
    database_url: str,
    simulator: SimulatorProcess,
    tmp_path: Path,
    db: asyncpg.Connection,
) -> None:
    # "poll": no webhook ever arrives, so the reconciler reads the status (COMPLETED) and
    # the result, which answers Fal's own error with its status code.
    simulator.configure(error_rate=1.0, drop_webhook_rate=1.0 if delivery == "poll" else 0.0)
    app = AppProcess(database_url, simulator, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            flagged = await create(client, user, prompt="a forbidden scene #fail")
            refused = await create(
                client, user, model=I2V, prompt="an image Fal cannot fetch #badinput",
                image_url=IMAGE,
            )  # fmt: skip
            crashed = await create(client, user, prompt="the runner crashes")
            done = {
                name: await finished(client, user, video["id"])
                for name, video in (("flagged", flagged), ("refused", refused),
                                    ("crashed", crashed))
            }  # fmt: skip
            balance = (await client.get("/api/credits", headers=user.auth)).json()["balance"]
    finally:
        app.stop()
    codes = {name: (v["status"], v["error"]["code"]) for name, v in done.items()}
    assert codes == {
        "flagged": ("failed", "content_policy_violation"),
        "refused": ("failed", "invalid_input"),
        "crashed": ("failed", "provider_error"),
    }
    assert "flagged by a content checker" in done["flagged"]["error"]["message"]
    assert "download" in done["refused"]["error"]["message"]
    assert "runner_server_error" in done["crashed"]["error"]["message"]
    for video in done.values():
        charged = video["credits_charged"]
        assert await ledger(db, video["id"]) == [("debit", -charged), ("refund", charged)]
        assert (await history(db, video["id"]))[-1] == ("failed", delivery)
    assert balance == 1000
    assert (await run_audit(database_url)).ok


async def test_a_completed_job_is_charged_and_keeps_its_charge(
    fal_app: tuple[AppProcess, httpx.AsyncClient], db: asyncpg.Connection
) -> None:
    _, client = fal_app
    user = await create_user(client, credits=1000)
    video = await finished(client, user, (await create(client, user))["id"])
    assert video["status"] == "completed" and video["error"] is None
    assert await ledger(db, video["id"]) == [("debit", -KLING_5S)]


async def test_our_deadline_fails_the_job_as_timeout_and_refunds(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    app = AppProcess(database_url, simulator, tmp_path, JOB_DEADLINE_S="2").start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            video = await finished(client, user, (await create(client, user, prompt="#hold"))["id"])
    finally:
        app.stop()
    assert (video["status"], video["error"]["code"]) == ("failed", "timeout")
    assert await ledger(db, video["id"]) == [("debit", -KLING_5S), ("refund", KLING_5S)]


async def running_at_fal(db: asyncpg.Connection, simulator: SimulatorProcess, video_id: str) -> str:
    async def probe() -> str | None:
        fal_id = (await video_row(db, video_id))["falRequestId"]
        return str(fal_id) if fal_id and simulator.job(fal_id)["status"] == "IN_PROGRESS" else None

    result: str = await wait_until(probe, within=15, what="the job running at Fal")
    return result


async def test_canceled_before_fal_runs_it_is_refunded_at_once(
    fal_app: tuple[AppProcess, httpx.AsyncClient], db: asyncpg.Connection
) -> None:
    _, client = fal_app
    user = await create_user(client, credits=1000)
    video = await create(client, user, prompt="queued for long #slow")  # ~2 s in Fal's queue
    canceled = await client.post(f"/api/videos/{video['id']}/cancel", headers=user.auth)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["error"]["code"] == "canceled"
    assert await ledger(db, video["id"]) == [("debit", -KLING_5S), ("refund", KLING_5S)]


async def test_canceled_while_running_is_refunded_when_fal_stops_it(
    fal_app: tuple[AppProcess, httpx.AsyncClient],
    simulator: SimulatorProcess,
    db: asyncpg.Connection,
) -> None:
    _, client = fal_app
    user = await create_user(client, credits=1000)
    video = await create(client, user, prompt="running until canceled #hold")
    await running_at_fal(db, simulator, video["id"])
    await wait_until(
        lambda: _status_is(db, video["id"], "processing"), within=10, what="processing"
    )
    answer = await client.post(f"/api/videos/{video['id']}/cancel", headers=user.auth)
    assert answer.status_code == 200 and answer.json()["status"] == "canceling"
    assert await ledger(db, video["id"]) == [("debit", -KLING_5S)]  # not yet: Fal decides
    again = await client.post(f"/api/videos/{video['id']}/cancel", headers=user.auth)
    assert again.status_code == 200 and again.json()["status"] == "canceling"  # no early refund

    done = await finished(client, user, video["id"])
    assert (done["status"], done["error"]["code"]) == ("canceled", "canceled")
    assert await ledger(db, video["id"]) == [("debit", -KLING_5S), ("refund", KLING_5S)]
    assert [s for s, _ in await history(db, video["id"])][-2:] == ["canceling", "canceled"]


async def test_canceled_while_running_keeps_the_charge_when_fal_delivers_anyway(
    fal_app: tuple[AppProcess, httpx.AsyncClient],
    simulator: SimulatorProcess,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    simulator.configure(cancel_running=False)  # Fal only signals the app; it finishes
    _, client = fal_app
    user = await create_user(client, credits=1000)
    video = await create(client, user, prompt="finishes regardless #slow")
    fal_id = await running_at_fal(db, simulator, video["id"])
    await wait_until(
        lambda: _status_is(db, video["id"], "processing"), within=10, what="processing"
    )
    answer = await client.post(f"/api/videos/{video['id']}/cancel", headers=user.auth)
    assert answer.status_code == 200 and answer.json()["status"] == "canceling"

    done = await finished(client, user, video["id"])
    assert done["status"] == "completed" and done["video"]["url"]
    assert simulator.job(fal_id)["cancel_calls"] >= 1
    assert await ledger(db, video["id"]) == [("debit", -KLING_5S)]
    assert (await run_audit(database_url)).ok


async def _status_is(db: asyncpg.Connection, video_id: str, status: str) -> bool:
    return bool((await video_row(db, video_id))["status"] == status)


async def test_an_unknown_status_shape_fails_only_that_jobs_step(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    simulator.configure(drop_webhook_rate=1.0)  # every job is finished by polling
    app = AppProcess(database_url, simulator, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            odd = await create(client, user, prompt="a status fal-client cannot parse #oddstatus")
            normal = await create(client, user, prompt="an ordinary job")
            assert (await finished(client, user, normal["id"]))["status"] == "completed"

            async def polled_again_and_again() -> bool:
                return bool((await video_row(db, odd["id"]))["pollAttempts"] >= 3)

            await wait_until(polled_again_and_again, within=20, what="repeated polls")
            still = (await client.get(f"/api/videos/{odd['id']}", headers=user.auth)).json()
    finally:
        app.stop()
    # Not failed, not lost: the job waits for a status we understand (or its deadline).
    assert still["status"] in {"queued", "processing"} and still["error"] is None
    assert "had an unknown shape" in (tmp_path / f"app-{app.port}.log").read_text()


async def test_a_submit_whose_answer_was_lost_is_adopted_by_its_late_webhook(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    # Fal accepts the job at once but answers after our submit budget: "maybe accepted".
    simulator.configure(submit_delay_s=3.0)
    app = AppProcess(
        database_url, simulator, tmp_path, FAL_SUBMIT_TIMEOUT_S="1", SUBMIT_UNCERTAIN_GRACE_S="60"
    ).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            video = await create(client, user, prompt="an answer that never came")
            done = await finished(client, user, video["id"])
    finally:
        app.stop()
    assert done["status"] == "completed"
    assert simulator.submissions()["by_prompt"]["an answer that never came"] == 1
    (submission,) = [
        s for s in simulator.submissions()["submissions"]
        if s["input"]["prompt"] == "an answer that never came"
    ]  # fmt: skip
    assert f"video_id={video['id']}" in submission["webhook_url"]
    # Adopted by the webhook in one statement (the row takes Fal's request id and its
    # output), then completed by our copy.
    assert await history(db, video["id"]) == [
        ("pending", "api"),
        ("processing", "webhook"),
        ("completed", "copy"),
    ]
    assert (await video_row(db, video["id"]))["falRequestId"] == submission["request_id"]
    assert await ledger(db, video["id"]) == [("debit", -KLING_5S)]


async def test_a_webhook_signed_for_another_fal_account_changes_nothing(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    app = AppProcess(
        database_url, simulator, tmp_path,
        FAL_WEBHOOK_USER_ID="our-fal-account", POLL_AFTER_S="600",
    ).start()  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            video = await create(client, user, prompt="signed for someone else")
            fal_id = await wait_until(
                lambda: _fal_id(db, video["id"]), within=10, what="the Fal request id"
            )

            async def delivery_tried() -> Any:
                hook = simulator.job(fal_id)["webhook"]
                return hook["state"] in {"failed", "delivered"} and hook

            hook = await wait_until(delivery_tried, within=20, what="webhook delivery")
            still = (await client.get(f"/api/videos/{video['id']}", headers=user.auth)).json()
    finally:
        app.stop()
    assert hook["state"] == "failed"
    assert {a["status_code"] for a in hook["attempts"]} == {401}
    assert still["status"] in {"queued", "processing"}


async def _fal_id(db: asyncpg.Connection, video_id: str) -> str | None:
    fal_id = (await video_row(db, video_id))["falRequestId"]
    return str(fal_id) if fal_id else None
