"""Every query over `videos`."""

import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg
from sqlalchemy import func, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.catalog.models import CatalogModel
from app.core import ratelimit_repository
from app.core.columns import utcnow
from app.core.pagination import Position
from app.core.sql import Statement
from app.credits import ledger
from app.videos.models import Video, VideoStatus
from app.videos.state import ACTIVE

# The statuses are spelled out, not a parameter, so that the planner can use the partial
# indexes over unfinished jobs (their predicate must be provable from the query text).
ACTIVE_LIST = ", ".join(f"'{status}'" for status in sorted(ACTIVE))

# Creating a video is one statement outside any transaction block (its own transaction):
# the rate-limit token, the charge, the job, its ledger row, its first event and the stored
# response under the Idempotency-Key, all or nothing. The cap is the owner's "activeJobs"
# counter, checked in the same conditional UPDATE that charges: after waiting for another
# writer's lock on the row, PostgreSQL re-checks that condition on the newest row version,
# so two racing creates of one user cannot both take the last slot (a count of "videos"
# would be read from the statement's snapshot, taken before the wait).
# The key is claimed by inserting its row *without* ON CONFLICT: a key already used aborts
# the whole statement with a unique violation (nothing charged), and the caller replays the
# stored answer. Creates of one user queue on the user's row lock, so a duplicate in flight
# waits there and then replays. `lock_timeout` bounds those waits (IDEMPOTENCY_WAIT_S); it
# is local to this statement's implicit transaction, and set first: the CTEs that wait
# reference `bounded`.
# Nothing is written but the token when the create is refused (cap, balance, upload, rate):
# the caller asks why in a second statement (WHY_NOT_CREATED), on that path only.
UPLOAD_OWNED = """(CAST(:upload_id AS uuid) IS NULL
    OR EXISTS (SELECT FROM "uploads" WHERE "id" = :upload_id AND "userId" = :user_id))"""
COUNT_ACTIVE_JOB = ', "activeJobs" = "users"."activeJobs" + 1'


def _create(rate_limited: bool) -> Statement:
    # With the rate limit: the token is taken first, the charge needs it, and the answer says
    # whether it was there and what the bucket held (for Retry-After).
    taken = allowed = tokens = ""
    if rate_limited:
        taken = f"taken AS ({ratelimit_repository.take_token(source='FROM bounded')}),"
        allowed = "AND EXISTS (SELECT FROM taken)"
        tokens = f""", EXISTS (SELECT FROM taken) AS allowed,
            {ratelimit_repository.TOKENS_BEFORE} AS tokens"""
    guard = f""""users"."activeJobs" < :max_active AND {UPLOAD_OWNED} {allowed}
        AND EXISTS (SELECT FROM bounded)"""
    return Statement(f"""
    WITH bounded AS (SELECT set_config('lock_timeout', :wait_ms, true)),
    {taken}
    charged AS ({
        ledger.move_balance(
            user=":user_id", amount=":amount", guard=guard, also_set=COUNT_ACTIVE_JOB
        )
    }),
    video AS (
        INSERT INTO "videos" ("id", "userId", "modelId", "kind", "prompt", "negativePrompt",
            "imageUrl", "duration", "aspectRatio", "resolution", "seed", "options", "status",
            "creditsCharged", "idempotencyKey", "requestFingerprint", "createdAt", "updatedAt")
        SELECT :id, "userId", :model_id, :kind, :prompt, :negative_prompt, :image_url, :duration,
            :aspect_ratio, :resolution, :seed, CAST(:options AS jsonb), 'pending', 0 - :amount,
            :idempotency_key, :fingerprint, :now, :now
        FROM charged
        RETURNING "id"
    ),
    debit AS ({
        ledger.append_video_entry(
            "debit", moved="charged", amount=":amount", video_id=":id", reason=":reason"
        )
    }),
    event AS (
        INSERT INTO "videoEvents" ("videoId", "status", "source")
        SELECT "id", 'pending', 'api' FROM video
    ),
    claimed AS (
        INSERT INTO "idempotencyRequests" ("scope", "key", "method", "path", "fingerprint",
            "responseStatus", "responseBody")
        SELECT :scope, :idempotency_key, :method, :path, :fingerprint, 202, :response FROM video
    )
    SELECT EXISTS (SELECT FROM video) AS created{tokens}
""")


CREATE = _create(rate_limited=False)
CREATE_RATE_LIMITED = _create(rate_limited=True)
# Why a create wrote nothing, read after it (so after any lock wait): the owner's row as it
# is now, and whether the upload it names is theirs. No row: the user does not exist.
WHY_NOT_CREATED = Statement(f"""
    SELECT "creditBalance" AS balance, "activeJobs" AS active_jobs, {UPLOAD_OWNED} AS upload_owned
    FROM "users" WHERE "id" = :user_id
""")

# Every move into a terminal state: the conditional UPDATE (the state machine: it applies
# only from `allowed_from`), its event, the owner's active-job count, and for failed /
# canceled the refund (balance and ledger row, keyed `video:<id>:refund` so it can happen
# once): one statement, one transaction. The row lock taken by UPDATE serializes racing
# writers; the loser re-checks the status after the winner commits and matches nothing,
# which is what makes duplicate webhooks, polls and cancels harmless. A job being canceled
# that fails lands on `canceled` (app/videos/state.py); "status" on the right of SET is the
# row's old value.
# Columns are returned by name, in the model's order: `finish` maps them onto Video.
VIDEO_COLUMNS = ", ".join(f'"{c.name}"' for c in Video.__table__.columns)  # type: ignore[attr-defined]
CANCELING_FAILS = """"status" = 'canceling' AND CAST(:status AS text) = 'failed'"""


REFUNDABLE = """f."status" IN ('failed', 'canceled') AND f."creditsCharged" > 0"""
MOVED_CHARGE, MOVED_VIDEO = 'm."creditsCharged"', 'm."videoId"'
REFUND_REASON = "'video ' || m.\"status\""
# The owner's row, once per finished job: one job fewer running, and the charge back when
# it is refundable. One UPDATE: two of the same row in one statement would not both apply
# (so every FINISH matches one video at most). Never below zero: a job created by a writer
# that does not count (an old release mid-rollout) must not lift the user's cap.
SETTLE_ACTIVE_JOB = ', "activeJobs" = GREATEST("users"."activeJobs" - 1, 0)'


def _finish(match: str, also_set: str = "") -> Statement:
    return Statement(f"""
    WITH finished AS (
        UPDATE "videos" SET
            "status" = CASE WHEN {CANCELING_FAILS} THEN 'canceled' ELSE :status END,
            "videoUrl" = :video_url,
            "videoMetadata" = CAST(:video_metadata AS jsonb),
            "errorCode" = CASE WHEN {CANCELING_FAILS} THEN 'canceled' ELSE :error_code END,
            "errorMessage" = :error_message,
            "queuePosition" = NULL,
            "lastEventAt" = COALESCE(CAST(:last_event_at AS timestamptz), "lastEventAt"),
            "completedAt" = :now,
            "updatedAt" = :now{also_set}
        WHERE {match} AND "status" = ANY(:allowed_from)
        RETURNING *
    ),
    event AS (
        INSERT INTO "videoEvents" ("videoId", "status", "source")
        SELECT "id", "status", :source FROM finished
    ),
    settled AS ({
        ledger.move_balance(
            user='f."userId"',
            amount=f'CASE WHEN {REFUNDABLE} THEN f."creditsCharged" ELSE 0 END',
            source="finished f",
            also_set=SETTLE_ACTIVE_JOB,
            also_return=', f."id" AS "videoId", f."creditsCharged", f."status", '
            f'{REFUNDABLE} AS "refunded"',
        )
    }),
    refund AS ({
        ledger.append_video_entry(
            "refund",
            moved='(SELECT * FROM settled WHERE "refunded")',
            amount=MOVED_CHARGE,
            video_id=MOVED_VIDEO,
            reason=REFUND_REASON,
        )
    })
    SELECT {VIDEO_COLUMNS} FROM finished
""")


FINISH_BY_ID = _finish('"id" = :video_id')
# A failure from Fal after its output arrived (a contradicting late delivery) changes nothing:
# the copy decides, and the deadline bounds it.
FINISH_BY_FAL_REQUEST = _finish('"falRequestId" = :fal_request_id AND "videoUrl" IS NULL')
# A webhook for a request id we never stored, whose URL names a video still waiting on an
# uncertain submit (its answer was lost): that video's job is this request, and it takes
# the outcome at once. Only a pending row without a request id can be adopted, so a
# resubmitted job never changes hands.
FINISH_ADOPTING = _finish(
    '"id" = :video_id AND "falRequestId" IS NULL',
    also_set=', "falRequestId" = :fal_request_id, "nextAttemptAt" = NULL',
)


# Fal's word that the output is ready, before our copy of it exists (app/videos/finalise.py):
# the job is `processing` (a `canceling` one stays so) with Fal's URL recorded and is due for
# copying at once; only the copy makes it `completed`. A row that already has the URL (a
# duplicate delivery, or a poll racing the webhook) matches nothing.
def _record_output(match: str, also_set: str = "") -> Statement:
    return Statement(f"""
    WITH recorded AS (
        UPDATE "videos" SET
            "status" = CASE WHEN "status" = 'canceling' THEN 'canceling' ELSE 'processing' END,
            "videoUrl" = :video_url,
            "videoMetadata" = CAST(:video_metadata AS jsonb),
            "queuePosition" = NULL,
            "startedAt" = COALESCE("startedAt", :now),
            "lastEventAt" = COALESCE(CAST(:last_event_at AS timestamptz), "lastEventAt"),
            "nextAttemptAt" = NULL,
            "updatedAt" = :now{also_set}
        WHERE {match} AND "status" = ANY(:allowed_from) AND "videoUrl" IS NULL
        RETURNING "id", "status"
    ),
    event AS (
        INSERT INTO "videoEvents" ("videoId", "status", "source")
        SELECT "id", "status", :source FROM recorded
    )
    SELECT "id" FROM recorded
""")


RECORD_OUTPUT_BY_ID = _record_output('"id" = :video_id')
RECORD_OUTPUT_BY_FAL_REQUEST = _record_output('"falRequestId" = :fal_request_id')
RECORD_OUTPUT_ADOPTING = _record_output(
    '"id" = :video_id AND "falRequestId" IS NULL', also_set=', "falRequestId" = :fal_request_id'
)
# The copy is published: the job completes with our media. Matches only the output the copy
# was made of, and only while the job still waits for it (a deadline may have ended it).
MEDIA_COLUMNS = {
    "mediaKey": ":media_key",
    "posterKey": ":poster_key",
    "mediaContentType": ":media_content_type",
    "mediaSizeBytes": ":media_size_bytes",
    "mediaSha256": ":media_sha256",
    "mediaWidth": ":media_width",
    "mediaHeight": ":media_height",
    "mediaDurationS": ":media_duration_s",
}
FINISH_WITH_MEDIA = _finish(
    '"id" = :video_id AND "videoUrl" = :video_url AND "mediaKey" IS NULL',
    also_set="".join(f', "{column}" = {value}' for column, value in MEDIA_COLUMNS.items()),
)
KNOWN_FAL_REQUEST = Statement('SELECT EXISTS (SELECT FROM "videos" WHERE "falRequestId" = :id)')


async def create(
    driver: asyncpg.Connection, *, rate_limited: bool, **params: Any
) -> asyncpg.Record:
    """CREATE (or CREATE_RATE_LIMITED) as its own transaction: whether the job was created,
    and with the rate limit, whether a token was taken and how many the bucket held before.
    Raises asyncpg's UniqueViolationError when the Idempotency-Key was used before."""
    statement = CREATE_RATE_LIMITED if rate_limited else CREATE
    row = await statement.fetchrow(driver, **params)
    assert row is not None  # the statement's SELECT always answers one row
    return row


async def why_not_created(
    driver: asyncpg.Connection, user_id: uuid.UUID, upload_id: uuid.UUID | None
) -> asyncpg.Record | None:
    """WHY_NOT_CREATED: the owner's balance and active jobs, and whether the upload is
    theirs; None when there is no such user."""
    return await WHY_NOT_CREATED.fetchrow(driver, user_id=user_id, upload_id=upload_id)


async def finish_by_fal_request(
    driver: asyncpg.Connection, fal_request_id: str, **params: Any
) -> bool:
    """FINISH keyed by Fal's request id, as its own transaction: whether a row moved."""
    row = await FINISH_BY_FAL_REQUEST.fetchrow(driver, fal_request_id=fal_request_id, **params)
    return row is not None


async def finish_adopting(
    driver: asyncpg.Connection, video_id: uuid.UUID, fal_request_id: str, **params: Any
) -> bool:
    """FINISH_ADOPTING, as its own transaction: whether a pending row adopted the request."""
    row = await FINISH_ADOPTING.fetchrow(
        driver, video_id=video_id, fal_request_id=fal_request_id, **params
    )
    return row is not None


async def record_output_by_fal_request(
    driver: asyncpg.Connection, fal_request_id: str, **params: Any
) -> bool:
    found = await RECORD_OUTPUT_BY_FAL_REQUEST.fetchval(
        driver, fal_request_id=fal_request_id, **params
    )
    return found is not None


async def record_output_adopting(
    driver: asyncpg.Connection, video_id: uuid.UUID, fal_request_id: str, **params: Any
) -> bool:
    found = await RECORD_OUTPUT_ADOPTING.fetchval(
        driver, video_id=video_id, fal_request_id=fal_request_id, **params
    )
    return found is not None


async def record_output(session: AsyncSession, video_id: uuid.UUID, **params: Any) -> bool:
    """RECORD_OUTPUT_BY_ID in the session's transaction: whether the row took it."""
    result = await session.execute(RECORD_OUTPUT_BY_ID.text, {"video_id": video_id, **params})
    return result.scalar_one_or_none() is not None


async def finish_with_media(
    session: AsyncSession, video_id: uuid.UUID, **params: Any
) -> Video | None:
    """FINISH_WITH_MEDIA in the session's transaction: the completed row, or None."""
    statement = FINISH_WITH_MEDIA.text.columns(*Video.__table__.columns)  # type: ignore[attr-defined]
    query = select(Video).from_statement(statement).execution_options(populate_existing=True)
    result = await session.execute(query, {"video_id": video_id, **params})
    return result.scalar_one_or_none()


# Media leaves a video in one statement that says which files to remove: by its owner
# (DELETE /api/videos/{id}), or by retention. The row and its ledger rows stay.
def _forget_media(match: str, lock: str = "FOR UPDATE") -> Statement:
    return Statement(f"""
    UPDATE "videos" v SET "mediaDeletedAt" = :now, "updatedAt" = :now
    FROM (SELECT "id", "mediaKey", "posterKey" FROM "videos" WHERE {match} {lock}) old
    WHERE v."id" = old."id"
    RETURNING old."mediaKey", old."posterKey"
""")


FORGET_MEDIA_OF = _forget_media('"id" = :video_id AND "mediaDeletedAt" IS NULL')
# The predicate of "videos_media_kept_idx"; SKIP LOCKED lets replicas purge side by side.
FORGET_EXPIRED_MEDIA = _forget_media(
    """"mediaKey" IS NOT NULL AND "mediaDeletedAt" IS NULL AND "completedAt" < :before
       ORDER BY "completedAt" LIMIT :limit""",
    lock="FOR UPDATE SKIP LOCKED",
)


def _keys(rows: Iterable[Any]) -> list[str]:
    return [key for row in rows for key in (row[0], row[1]) if key]


async def forget_media(session: AsyncSession, video_id: uuid.UUID, now: Any) -> list[str]:
    """Mark the video's media deleted; the keys of the files to remove."""
    result = await session.execute(FORGET_MEDIA_OF.text, {"video_id": video_id, "now": now})
    return _keys(result)


async def forget_expired_media(
    session: AsyncSession, *, before: Any, limit: int, now: Any
) -> list[str]:
    """Mark up to `limit` videos completed before `before` as purged; their files' keys."""
    params = {"before": before, "limit": limit, "now": now}
    return _keys(await session.execute(FORGET_EXPIRED_MEDIA.text, params))


REFERENCED_MEDIA = Statement("""
    SELECT "mediaKey" FROM "videos" WHERE "mediaKey" IS NOT NULL AND "mediaDeletedAt" IS NULL
    UNION ALL
    SELECT "posterKey" FROM "videos" WHERE "posterKey" IS NOT NULL AND "mediaDeletedAt" IS NULL
""")


async def referenced_media(session: AsyncSession) -> set[str]:
    """Every media key a video still points at."""
    return {row[0] for row in await session.execute(REFERENCED_MEDIA.text)}


async def fal_request_known(driver: asyncpg.Connection, fal_request_id: str) -> bool:
    return bool(await KNOWN_FAL_REQUEST.fetchval(driver, id=fal_request_id))


async def finish(session: AsyncSession, video_id: uuid.UUID, **params: Any) -> Video | None:
    """FINISH_BY_ID in the session's transaction: the updated row, or None if not allowed."""
    statement = FINISH_BY_ID.text.columns(*Video.__table__.columns)  # type: ignore[attr-defined]
    query = select(Video).from_statement(statement).execution_options(populate_existing=True)
    result = await session.execute(query, {"video_id": video_id, **params})
    return result.scalar_one_or_none()


def _with_slug() -> Any:
    return select(Video, CatalogModel.slug).join(
        CatalogModel, col(CatalogModel.id) == col(Video.model_id)
    )


async def get_for_user(
    session: AsyncSession, video_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Video, str] | None:
    query = _with_slug().where(col(Video.id) == video_id, col(Video.user_id) == user_id)
    row = (await session.execute(query)).one_or_none()
    return (row[0], row[1]) if row else None


async def list_page_for_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    limit: int,
    after: Position | None,
    status: VideoStatus | None,
) -> list[tuple[Video, str]]:
    """Newest first on ("createdAt", id); `limit + 1` rows to tell whether more exist."""
    query = _with_slug().where(col(Video.user_id) == user_id)
    if status is not None:
        query = query.where(col(Video.status) == status)
    if after is not None:
        query = query.where(tuple_(col(Video.created_at), col(Video.id)) < tuple_(*after))
    query = query.order_by(col(Video.created_at).desc(), col(Video.id).desc()).limit(limit + 1)
    return [(row[0], row[1]) for row in await session.execute(query)]


async def update_if_status(
    session: AsyncSession,
    video_id: uuid.UUID,
    allowed_from: Iterable[str],
    **values: Any,
) -> Video | None:
    """Conditional update: applies only while the row is in one of `allowed_from`.

    The row lock taken by UPDATE serializes racing writers; the loser re-checks the status
    after the winner commits and matches nothing. That is what makes duplicate webhooks,
    polls and cancels harmless.
    """
    statement = (
        update(Video)
        .where(col(Video.id) == video_id, col(Video.status).in_(list(allowed_from)))
        .values(updated_at=utcnow(), **values)
        .returning(Video)
    )
    # populate_existing: the session may already hold this row as it was before the update.
    query = select(Video).from_statement(statement).execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def get(session: AsyncSession, video_id: uuid.UUID) -> Video | None:
    return await session.get(Video, video_id, populate_existing=True)


async def count_by_model_and_status(session: AsyncSession) -> dict[str, dict[str, int]]:
    """{model slug: {status: jobs}}."""
    query = (
        select(CatalogModel.slug, Video.status, func.count())
        .join(Video, col(Video.model_id) == col(CatalogModel.id))
        .group_by(col(CatalogModel.slug), col(Video.status))
    )
    counts: dict[str, dict[str, int]] = {}
    for slug, status, count in await session.execute(query):
        counts.setdefault(slug, {})[status] = count
    return counts


RECORD_EVENT = Statement(
    'INSERT INTO "videoEvents" ("videoId", "status", "source") VALUES (:video_id, :status, :source)'
)


async def record_event(
    session: AsyncSession, video_id: uuid.UUID, status: str, source: str
) -> None:
    params = {"video_id": video_id, "status": status, "source": source}
    await session.execute(RECORD_EVENT.text, params)


async def get_by_fal_request_id(session: AsyncSession, request_id: str) -> Video | None:
    query = select(Video).where(col(Video.fal_request_id) == request_id)
    return (
        await session.execute(query.execution_options(populate_existing=True))
    ).scalar_one_or_none()


# Claims lease a row by pushing "nextAttemptAt" into the future and committing: other
# workers (in any replica) skip it until the lease ends, without a transaction held open
# while we talk to Fal. SKIP LOCKED keeps concurrent claimers from queueing on each other.
def _claim_due(counter: str, condition: str) -> Statement:
    return Statement(f"""
    UPDATE "videos" v SET
        "nextAttemptAt" = now() + make_interval(secs => :lease_s),
        {counter} = v.{counter} + 1,
        "updatedAt" = now()
    WHERE v."id" IN (
        SELECT "id" FROM "videos"
        WHERE {condition}
          AND ("nextAttemptAt" IS NULL OR "nextAttemptAt" <= now())
        ORDER BY "createdAt"
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING v.*
""")


CLAIM_ONE_PENDING = _claim_due('"submitAttempts"', """"status" = 'pending' AND "id" = :id""")
CLAIM_PENDING = _claim_due('"submitAttempts"', """"status" = 'pending'""")
CLAIM_STALE = _claim_due(
    '"pollAttempts"',
    f""""status" IN ({ACTIVE_LIST}) AND "status" <> 'pending' AND "falRequestId" IS NOT NULL
        AND "videoUrl" IS NULL
        AND COALESCE("lastEventAt", "updatedAt") <= now() - make_interval(secs => :quiet_s)""",
)
CLAIM_OVERDUE = _claim_due(
    '"pollAttempts"',
    f""""status" IN ({ACTIVE_LIST})
        AND "createdAt" <= now() - make_interval(secs => :deadline_s)""",
)


# The predicate of "videos_awaiting_copy_idx", spelled out so the planner can use it. A job
# past its deadline is not copied again: it is CLAIM_OVERDUE's to fail and refund, and a copy
# retried with backoff would otherwise keep taking it first each time its retry falls due.
CLAIM_COPIES = _claim_due(
    '"copyAttempts"',
    """"videoUrl" IS NOT NULL AND "mediaKey" IS NULL AND "status" IN ('processing', 'canceling')
        AND "createdAt" > now() - make_interval(secs => :deadline_s)""",
)


async def _claim(session: AsyncSession, statement: Statement, **params: Any) -> list[Video]:
    query = select(Video).from_statement(statement.text).execution_options(populate_existing=True)
    return list((await session.execute(query, params)).scalars())


async def claim_pending(
    session: AsyncSession, *, lease_s: float, limit: int, video_id: uuid.UUID | None = None
) -> list[Video]:
    """Pending jobs due for (re)submission, leased to the caller."""
    if video_id is not None:
        return await _claim(session, CLAIM_ONE_PENDING, id=video_id, lease_s=lease_s, limit=1)
    return await _claim(session, CLAIM_PENDING, lease_s=lease_s, limit=limit)


async def claim_stale(
    session: AsyncSession, *, quiet_s: float, lease_s: float, limit: int
) -> list[Video]:
    """Queued / processing jobs we have had no news of for `quiet_s`, leased to the caller."""
    return await _claim(session, CLAIM_STALE, quiet_s=quiet_s, lease_s=lease_s, limit=limit)


async def claim_overdue(
    session: AsyncSession, *, deadline_s: float, lease_s: float, limit: int
) -> list[Video]:
    """Unfinished jobs older than the deadline."""
    return await _claim(session, CLAIM_OVERDUE, deadline_s=deadline_s, lease_s=lease_s, limit=limit)


EXTEND_COPY_LEASE = Statement("""
    UPDATE "videos" SET "nextAttemptAt" = now() + make_interval(secs => :lease_s)
    WHERE "id" = :id AND "mediaKey" IS NULL AND "status" IN ('processing', 'canceling')
""")


async def extend_copy_lease(session: AsyncSession, video_id: uuid.UUID, lease_s: float) -> None:
    """A copy still running keeps its row: the lease is short, so a crash costs little."""
    await session.execute(EXTEND_COPY_LEASE.text, {"id": video_id, "lease_s": lease_s})


async def claim_copies(
    session: AsyncSession, *, deadline_s: float, lease_s: float, limit: int
) -> list[Video]:
    """Jobs within their deadline whose output Fal has delivered and we have not copied yet,
    leased to the caller."""
    return await _claim(session, CLAIM_COPIES, deadline_s=deadline_s, lease_s=lease_s, limit=limit)


async def set_fields(session: AsyncSession, video_id: uuid.UUID, **values: Any) -> None:
    """Bookkeeping that is not a status change (queue position, retry time, news time)."""
    await session.execute(
        update(Video).where(col(Video.id) == video_id).values(updated_at=utcnow(), **values)
    )


EVENTS = Statement(
    'SELECT "status", "source" FROM "videoEvents" WHERE "videoId" = :id ORDER BY "id"'
)


async def list_events(session: AsyncSession, video_id: uuid.UUID) -> list[tuple[str, str]]:
    result = await session.execute(EVENTS.text, {"id": video_id})
    return [(row[0], row[1]) for row in result]


async def list_with_slug_by_ids(
    session: AsyncSession, video_ids: Iterable[uuid.UUID]
) -> list[tuple[Video, str]]:
    """The rows of these videos that exist, each with its model's slug, in one query.

    `= ANY(:ids)`, one array parameter: the same statement text (one prepared statement)
    whatever the number of ids. The live-updates broker (app/videos/events.py) runs it once
    per interval for every stream of the process.
    """
    from sqlalchemy import ARRAY, Uuid, any_, bindparam

    ids = bindparam("ids", list(video_ids), type_=ARRAY(Uuid))
    query = _with_slug().where(col(Video.id) == any_(ids))
    return [(row[0], row[1]) for row in await session.execute(query)]
