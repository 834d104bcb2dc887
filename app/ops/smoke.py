"""`vidgen smoke`: the staging smoke suite, run against a deployed base URL.

The seed's four checks: database and model status, a credit transaction, a video job end
to end, and /api/health. Safe to repeat: it reuses one dedicated smoke user, grants exactly
what its one video costs, and uses the cheapest text-to-video model.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.media.download import sniff_video

SMOKE_EMAIL = "smoke-test@example.com"
SMOKE_PROMPT = "vidgen smoke test: a slow pan over a calm lake"
TERMINAL = {"completed", "failed", "canceled"}


class CheckFailed(Exception):
    pass


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str
    seconds: float


@dataclass
class SmokeSuite:
    base_url: str
    admin_token: str
    skip_video: bool = False
    video_timeout_s: float = 180.0
    results: list[CheckResult] = field(default_factory=list)
    _api_key: str | None = None
    _user_id: str | None = None
    _model: dict[str, Any] | None = None

    async def run(self) -> list[CheckResult]:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=15) as client:
            self.client = client
            await self._check("database and models", self.database_and_models)
            await self._check("credit transaction", self.credit_transaction)
            if not self.skip_video:
                await self._check("video job end to end", self.video_end_to_end)
            await self._check("/api/health", self.health)
        return self.results

    async def _check(self, name: str, check: Callable[[], Awaitable[str]]) -> None:
        started = time.monotonic()
        try:
            detail, passed = await check(), True
        except CheckFailed as error:
            detail, passed = str(error), False
        except (httpx.HTTPError, ValueError, KeyError) as error:  # unreachable, or not our API
            detail, passed = f"{type(error).__name__}: {error}", False
        self.results.append(CheckResult(name, passed, detail, time.monotonic() - started))

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def user(self) -> dict[str, str]:
        if self._api_key is None:
            raise CheckFailed("no smoke user (the first check failed)")
        return {"Authorization": f"Bearer {self._api_key}"}

    async def database_and_models(self) -> str:
        health = await self.client.get("/api/health")
        body = health.json()
        if health.status_code != 200 or body.get("database") != "ok":
            raise CheckFailed(f"/api/health {health.status_code}: {body}")
        user = await self.client.post(
            "/api/admin/users",
            json={"email": SMOKE_EMAIL, "rotate_existing": True},
            headers=self.admin,
        )
        if user.status_code not in (200, 201):
            raise CheckFailed(f"smoke user: {user.status_code} {user.text[:200]}")
        self._api_key, self._user_id = user.json()["api_key"], user.json()["id"]
        models = (await self.client.get("/api/models", headers=self.user)).json()["data"]
        text_models = [m for m in models if m["kind"] == "text-to-video"]
        if not text_models:
            raise CheckFailed("no active text-to-video model")
        self._model = min(text_models, key=lambda m: min(m["pricing"]["by_duration"].values()))
        applied = body["migrations"]["applied"]
        return f"database ok, {applied} migrations, {len(models)} active models"

    async def credit_transaction(self) -> str:
        if self._model is None:
            raise CheckFailed("no model to price the video (the first check failed)")
        amount = min(self._model["pricing"]["by_duration"].values())
        response = await self.client.post(
            "/api/admin/credits",
            json={"user_id": self._user_id, "amount": amount, "kind": "grant", "reason": "smoke"},
            headers={**self.admin, "Idempotency-Key": f"smoke-{uuid.uuid4()}"},
        )
        if response.status_code != 201:
            raise CheckFailed(f"grant: {response.status_code} {response.text[:200]}")
        row = response.json()
        listed = (await self.client.get("/api/credits", headers=self.user)).json()
        if row["id"] not in {t["id"] for t in listed["data"]}:
            raise CheckFailed(f"transaction {row['id']} not visible in /api/credits")
        return f"+{amount} credits, transaction {row['id']} visible, balance {listed['balance']}"

    async def video_end_to_end(self) -> str:
        if self._model is None:
            raise CheckFailed("no model (the first check failed)")
        created = await self.client.post(
            "/api/videos",
            json={"model": self._model["id"], "prompt": SMOKE_PROMPT},
            headers={**self.user, "Idempotency-Key": f"smoke-{uuid.uuid4()}"},
        )
        if created.status_code != 202:
            raise CheckFailed(f"create: {created.status_code} {created.text[:200]}")
        video = created.json()
        deadline = time.monotonic() + self.video_timeout_s
        while video["status"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise CheckFailed(f"video {video['id']} still {video['status']}")
            await asyncio.sleep(1.0)
            video = (await self.client.get(f"/api/videos/{video['id']}", headers=self.user)).json()
        if video["status"] != "completed":
            raise CheckFailed(f"video {video['id']} ended {video['status']}: {video['error']}")
        ledger = (await self.client.get("/api/credits?limit=100", headers=self.user)).json()
        kinds = [t["kind"] for t in ledger["data"] if t["video_id"] == video["id"]]
        if kinds != ["debit"]:
            raise CheckFailed(f"video {video['id']} ledger rows {kinds}, expected one debit")
        # Our copy, where clients play it from: the signed URL serves the video's first bytes.
        media = await self.client.get(video["video"]["url"], headers={"Range": "bytes=0-15"})
        if media.status_code not in (200, 206) or sniff_video(media.content) is None:
            raise CheckFailed(f"video {video['id']} media: {media.status_code} {media.text[:100]}")
        return (
            f"{video['id']} completed, charged {video['credits_charged']} once, "
            f"its {video['video']['size_bytes']}-byte copy served"
        )

    async def health(self) -> str:
        response = await self.client.get("/api/health")
        if response.status_code != 200:
            raise CheckFailed(f"/api/health {response.status_code}: {response.text[:200]}")
        return "200"


def render(results: list[CheckResult]) -> str:
    rows = [("check", "result", "time", "detail")]
    rows += [
        (r.name, "PASS" if r.passed else "FAIL", f"{r.seconds:.2f}s", r.detail) for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row))
        for row in rows
    ]
    return "\n".join(lines)
