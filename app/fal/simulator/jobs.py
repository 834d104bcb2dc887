"""Simulated Fal queue requests: their timeline, outcome and the records tests inspect.

Each accepted request gets one asyncio task in the server process that walks it through
IN_QUEUE ➜ IN_PROGRESS ➜ COMPLETED and then hands it to the webhook sender, so clients see
time pass exactly as with real Fal: nothing advances because somebody polled.

Test values in the prompt (README, "Configuration"), like a payment provider's test card numbers:
`#fail` ends with a content-policy error, `#badinput` with an input error (the model could
not fetch the image), `#oddstatus` answers status polls with a status fal-client does not
know, `#hold` stays IN_PROGRESS until canceled, `#slow` takes 10x the configured delay.
"""

import asyncio
import datetime as dt
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.fal.simulator.media import SampleVideo
from app.fal.simulator.outcomes import Failure, Outcome, failure_for
from app.fal.simulator.settings import SimulatorSettings

FAIL_TAG = "#fail"
BAD_INPUT_TAG = "#badinput"
# Status polls answer a status fal-client does not know (it raises ValueError).
ODD_STATUS_TAG = "#oddstatus"
HOLD_TAG = "#hold"
SLOW_TAG = "#slow"
# The output file, once ready: not a video (`#notvideo`), or sent slowly (`#trickle`, ~3 s).
NOT_VIDEO_TAG = "#notvideo"
TRICKLE_TAG = "#trickle"
SLOW_FACTOR = 10
# Share of the delay spent IN_QUEUE; the rest is IN_PROGRESS.
QUEUE_SHARE = 1 / 3
# How many positions a request walks down while queued (…2, 1, 0), on top of any
# earlier requests still queued.
QUEUE_DEPTH = 3


class Phase(StrEnum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


class WebhookState(StrEnum):
    NONE = "none"  # no fal_webhook was given
    PENDING = "pending"  # request not finished yet
    DELIVERING = "delivering"
    DELIVERED = "delivered"  # every planned copy got a 2xx
    FAILED = "failed"  # attempts exhausted for at least one copy
    DROPPED = "dropped"  # FAL_SIMULATOR_DROP_WEBHOOK_RATE: never sent
    SKIPPED = "skipped"  # canceled, and webhook_on_cancel is off


@dataclass
class DeliveryAttempt:
    copy: int
    attempt: int
    url: str
    at: float
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def as_json(self) -> dict[str, Any]:
        return {
            "copy": self.copy,
            "attempt": self.attempt,
            "url": self.url,
            "at": self.at,
            "status_code": self.status_code,
            "error": self.error,
            "ok": self.ok,
        }


@dataclass
class Job:
    request_id: str
    app_id: str
    owner_alias: str
    model_input: dict[str, Any]
    webhook_url: str | None
    base_url: str
    submitted_at: float
    queue_s: float
    run_s: float | None  # None: held until canceled
    planned: Outcome
    seed: int
    phase: Phase = Phase.IN_QUEUE
    outcome: Outcome | None = None
    started_at: float | None = None
    completed_at: float | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    status_polls: int = 0
    result_fetches: int = 0
    cancel_calls: int = 0
    webhook_state: WebhookState = WebhookState.PENDING
    webhook_copies: int = 0
    deliveries: list[DeliveryAttempt] = field(default_factory=list)

    @property
    def queue_url(self) -> str:
        """Where fal-client's by-id calls go: owner/alias only, as real Fal answers."""
        return f"{self.base_url}/{self.owner_alias}/requests/{self.request_id}"

    @property
    def video_url(self) -> str:
        return f"{self.base_url}/files/{self.request_id}.mp4"

    @property
    def failure(self) -> Failure | None:
        return failure_for(self.outcome, self.model_input) if self.outcome else None

    @property
    def output_ready(self) -> bool:
        return self.phase is Phase.COMPLETED and self.outcome is Outcome.OK

    @property
    def tags(self) -> list[str]:
        prompt = self.model_input.get("prompt")
        text = prompt if isinstance(prompt, str) else ""
        tags = (
            FAIL_TAG, BAD_INPUT_TAG, ODD_STATUS_TAG, HOLD_TAG, SLOW_TAG, NOT_VIDEO_TAG,
            TRICKLE_TAG,
        )  # fmt: skip
        return [tag for tag in tags if tag in text]

    @property
    def inference_time(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return round(self.completed_at - self.started_at, 3)

    def add_log(self, message: str, level: str = "INFO") -> None:
        now = dt.datetime.now(dt.UTC).isoformat()
        self.logs.append({"message": message, "level": level, "source": "user", "timestamp": now})

    def output(self, video: SampleVideo) -> dict[str, Any]:
        """The model output of a successful request, as a Kling-style video endpoint returns."""
        return {
            "video": {
                "url": self.video_url,
                "content_type": video.content_type,
                "file_name": video.file_name,
                "file_size": video.size,
            },
            "seed": self.seed,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "app_id": self.app_id,
            "status": self.phase.value,
            "planned_outcome": self.planned.value,
            "outcome": self.outcome.value if self.outcome else None,
            "tags": self.tags,
            "input": self.model_input,
            "webhook_url": self.webhook_url,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "queue_s": self.queue_s,
            "run_s": self.run_s,
            "status_polls": self.status_polls,
            "result_fetches": self.result_fetches,
            "cancel_calls": self.cancel_calls,
            "webhook": {
                "state": self.webhook_state.value,
                "copies": self.webhook_copies,
                "delivered": sum(1 for d in self.deliveries if d.ok),
                "attempts": [d.as_json() for d in self.deliveries],
            },
        }


@dataclass
class Submission:
    """One submit call as received, accepted or not: what "submitted exactly once" counts."""

    seq: int
    at: float
    app_id: str
    model_input: dict[str, Any]
    webhook_url: str | None
    request_id: str | None  # None when rejected (invalid input, or the submit error rate)
    headers: dict[str, str]
    invalid: list[dict[str, Any]] = field(default_factory=list)  # why the input was refused

    @property
    def prompt(self) -> str:
        prompt = self.model_input.get("prompt")
        return prompt if isinstance(prompt, str) else ""

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "app_id": self.app_id,
            "input": self.model_input,
            "webhook_url": self.webhook_url,
            "request_id": self.request_id,
            "rejected": self.request_id is None,
            "invalid": self.invalid,
            "headers": self.headers,
        }


class SubmitRejected(Exception):
    """FAL_SIMULATOR_SUBMIT_ERROR_RATE fired: answer 500 and create nothing."""


class InvalidInput(Exception):
    """The input does not match the endpoint's schema: answer 422 with `detail`."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail


class CancelResult(StrEnum):
    CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"
    ALREADY_COMPLETED = "ALREADY_COMPLETED"
    NOT_FOUND = "NOT_FOUND"


# Called once a job is finished (or canceled with webhook_on_cancel) and has a webhook URL.
WebhookDispatch = Callable[[Job], Awaitable[None]]


class FalQueue:
    """All simulated requests of one process, and the task that drives each of them."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.jobs: dict[str, Job] = {}
        self.submissions: list[Submission] = []
        self.cancel_calls = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._dispatch: WebhookDispatch | None = None

    def set_webhook_dispatch(self, dispatch: WebhookDispatch) -> None:
        self._dispatch = dispatch

    def submit(
        self,
        *,
        app_id: str,
        owner_alias: str,
        model_input: dict[str, Any],
        webhook_url: str | None,
        base_url: str,
        headers: dict[str, str],
        invalid: list[dict[str, Any]] | None = None,
    ) -> Job:
        """Record the call, then accept it as a new request.

        Raises InvalidInput when `invalid` lists schema errors, SubmitRejected when the
        submit error rate fires; either way the call is recorded and nothing runs.
        """
        record = Submission(
            seq=len(self.submissions) + 1,
            at=time.time(),
            app_id=app_id,
            model_input=model_input,
            webhook_url=webhook_url,
            request_id=None,
            headers=headers,
            invalid=invalid or [],
        )
        self.submissions.append(record)
        if invalid:
            raise InvalidInput(invalid)
        if self.rng.random() < self.settings.submit_error_rate:
            raise SubmitRejected

        prompt = record.prompt
        delay = self.settings.delay_s * (SLOW_FACTOR if SLOW_TAG in prompt else 1)
        if FAIL_TAG in prompt:
            planned = Outcome.MODEL_ERROR
        elif BAD_INPUT_TAG in prompt:
            planned = Outcome.INPUT_ERROR
        elif self.rng.random() < self.settings.error_rate:
            planned = Outcome.RUNNER_ERROR
        else:
            planned = Outcome.OK
        seed = model_input.get("seed")
        job = Job(
            request_id=str(uuid.uuid4()),
            app_id=app_id,
            owner_alias=owner_alias,
            model_input=model_input,
            webhook_url=webhook_url,
            base_url=base_url,
            submitted_at=time.time(),
            queue_s=delay * QUEUE_SHARE,
            run_s=None if HOLD_TAG in prompt else delay * (1 - QUEUE_SHARE),
            planned=planned,
            seed=seed if isinstance(seed, int) else self.rng.randrange(2**31),
            webhook_state=WebhookState.PENDING if webhook_url else WebhookState.NONE,
        )
        record.request_id = job.request_id
        self.jobs[job.request_id] = job
        self._tasks[job.request_id] = asyncio.create_task(self._drive(job))
        return job

    def queue_position(self, job: Job) -> int:
        """Earlier requests still queued, plus a countdown over this request's queue time."""
        ahead = sum(
            1
            for other in self.jobs.values()
            if other.phase is Phase.IN_QUEUE and other.submitted_at < job.submitted_at
        )
        if job.queue_s <= 0:
            return ahead
        remaining = max(0.0, job.submitted_at + job.queue_s - time.time())
        return ahead + max(0, math.ceil(remaining / job.queue_s * QUEUE_DEPTH) - 1)

    def cancel(self, request_id: str) -> CancelResult:
        self.cancel_calls += 1
        job = self.jobs.get(request_id)
        if job is None:
            return CancelResult.NOT_FOUND
        job.cancel_calls += 1
        if job.phase is Phase.COMPLETED:
            return CancelResult.ALREADY_COMPLETED
        if job.phase is Phase.IN_PROGRESS and not self.settings.cancel_running:
            # Real Fal only signals a running model app, which may finish all the same.
            job.add_log("Cancellation requested; the app finishes anyway.", level="WARNING")
            return CancelResult.CANCELLATION_REQUESTED
        task = self._tasks.pop(request_id, None)
        if task is not None:
            task.cancel()
        job.add_log("Request cancelled by the client.", level="WARNING")
        self._finish(job, Outcome.CANCELLED)
        if self.settings.webhook_on_cancel:
            self._start_webhook(job)
        elif job.webhook_url:
            job.webhook_state = WebhookState.SKIPPED
        return CancelResult.CANCELLATION_REQUESTED

    async def shutdown(self) -> None:
        """Stop every timeline and delivery task (server shutdown or reset)."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self, settings: SimulatorSettings) -> None:
        await self.shutdown()
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.jobs.clear()
        self.submissions.clear()
        self.cancel_calls = 0

    async def _drive(self, job: Job) -> None:
        await asyncio.sleep(job.queue_s)
        job.phase = Phase.IN_PROGRESS
        job.started_at = time.time()
        job.add_log(f"Starting generation on {job.app_id}")
        if job.run_s is None:
            await asyncio.Event().wait()  # `#hold`: only cancel() ends this request
            return
        await asyncio.sleep(job.run_s / 2)
        job.add_log("Generating video: 50%")
        await asyncio.sleep(job.run_s / 2)
        failure = failure_for(job.planned, job.model_input)
        job.add_log(failure.error if failure else "Video generated", "ERROR" if failure else "INFO")
        self._finish(job, job.planned)
        self._tasks.pop(job.request_id, None)
        self._start_webhook(job)

    def _finish(self, job: Job, outcome: Outcome) -> None:
        job.phase = Phase.COMPLETED
        job.outcome = outcome
        job.completed_at = time.time()

    def _start_webhook(self, job: Job) -> None:
        if not job.webhook_url or self._dispatch is None:
            return
        if self.rng.random() < self.settings.drop_webhook_rate:
            job.webhook_state = WebhookState.DROPPED
            return
        job.webhook_copies = 2 if self.rng.random() < self.settings.duplicate_webhook_rate else 1
        job.webhook_state = WebhookState.DELIVERING
        key = f"webhook:{job.request_id}"
        self._tasks[key] = asyncio.create_task(self._deliver(key, job))

    async def _deliver(self, key: str, job: Job) -> None:
        assert self._dispatch is not None
        try:
            await self._dispatch(job)
        finally:
            self._tasks.pop(key, None)
