"""Load for the reliability suite: a client's view of every exchange, creates retried with one
Idempotency-Key until acknowledged, and waits and counts over what the load left behind."""

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from tests.support.factories import ApiUser

T2V = "kling-v2-master-t2v"
TERMINAL = ("completed", "failed", "canceled")


@dataclass
class Exchange:
    """One HTTP request as the client saw it: monotonic send / receive times and outcome."""

    route: str
    sent: float
    received: float
    status: int | None  # None: no HTTP answer (connection refused / reset, timeout)
    error: str | None = None

    @property
    def cut_off(self) -> bool:
        """Sent to a server that then went away without answering (not merely refused)."""
        return self.status is None and not (self.error or "").startswith("ConnectError")


@dataclass
class Traffic:
    """Everything the load sent, and each create's Idempotency-Key → acknowledged video id."""

    exchanges: list[Exchange] = field(default_factory=list)
    acks: dict[str, str] = field(default_factory=dict)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Keys whose first answer was lost or an error, so the same key had to be sent again.
    retried: set[str] = field(default_factory=set)
    # Keys deliberately sent again after a 202, and what the replay said.
    replays: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    async def request(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        route: str,
        **kwargs: Any,
    ) -> httpx.Response | None:
        sent = time.monotonic()
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TransportError as error:
            self.exchanges.append(Exchange(route, sent, time.monotonic(), None, repr(error)))
            return None
        self.exchanges.append(Exchange(route, sent, time.monotonic(), response.status_code))
        return response


def create_body(prefix: str) -> dict[str, Any]:
    return {"model": T2V, "prompt": f"{prefix} {uuid.uuid4().hex[:12]}"}


async def create_until_acked(
    traffic: Traffic,
    client: httpx.AsyncClient,
    base_url: Any,
    user: ApiUser,
    key: str,
    body: dict[str, Any],
    *,
    within: float = 60,
) -> httpx.Response:
    """POST /api/videos with one Idempotency-Key until it answers 202, as a careful client does:
    a lost answer or a server error says nothing about whether the job exists, so the same key
    is sent again. `base_url()` is re-read each time (the process behind it may be replaced).
    """
    deadline = time.monotonic() + within
    traffic.bodies[key] = body
    headers = {**user.auth, "Idempotency-Key": key}
    attempt = 0
    while True:
        attempt += 1
        response = await traffic.request(
            client, "POST", f"{base_url()}/api/videos", "create", json=body, headers=headers
        )
        if response is not None and response.status_code == 202:
            # The first acknowledgement stands; a later one for the same key is a replay.
            traffic.acks.setdefault(key, response.json()["id"])
            if attempt > 1:
                traffic.retried.add(key)
            return response
        if response is not None and response.status_code < 500 and response.status_code != 409:
            raise AssertionError(f"create {key} answered {response.status_code}: {response.text}")
        if time.monotonic() > deadline:
            last = response.status_code if response is not None else "no answer"
            raise AssertionError(f"create {key} not acknowledged within {within}s (last: {last})")
        await asyncio.sleep(0.05)  # retry backoff of the client, not test synchronisation


async def wait_all_terminal(
    db: asyncpg.Connection, user_id: uuid.UUID, expected: int, *, within: float
) -> float:
    """Poll until the user's `expected` videos are all terminal; return how long it took."""
    started = time.monotonic()
    deadline = started + within
    while True:
        row = await db.fetchrow(
            """SELECT count(*) AS total,
                      count(*) FILTER (WHERE status = ANY($2::text[])) AS done
               FROM videos WHERE "userId" = $1""",
            user_id,
            list(TERMINAL),
        )
        assert row is not None
        if row["total"] == expected and row["done"] == expected:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            stuck = await db.fetch(
                """SELECT id, status, "submitAttempts", "pollAttempts", "falRequestId"
                   FROM videos WHERE "userId" = $1 AND NOT (status = ANY($2::text[]))
                   LIMIT 10""",
                user_id,
                list(TERMINAL),
            )
            raise AssertionError(
                f"{row['done']}/{row['total']} (expected {expected}) videos terminal after "
                f"{within}s; some stuck: {[dict(r) for r in stuck]}"
            )
        await asyncio.sleep(0.2)


async def debits_per_video(db: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, int]:
    rows = await db.fetch(
        """SELECT v.id, count(t.id) AS debits FROM videos v
           LEFT JOIN "creditTransactions" t ON t."videoId" = v.id AND t.kind = 'debit'
           WHERE v."userId" = $1 GROUP BY v.id""",
        user_id,
    )
    return {str(r["id"]): r["debits"] for r in rows}
