"""SQL for seeding and for the raw-asyncpg floors.

The floors and replays reuse the app's own statement texts where the app has them (the
ledger movement, the idempotency claim, the create and finish statements), so they can
never drift from what the app sends. The app's hot-path statements are
`app.core.sql.Statement`s, already in asyncpg's `$n` form; the older SQLAlchemy texts are
converted here.
"""

import re
from typing import Any

from sqlalchemy import TextClause

from app.core.sql import Statement
from app.credits import repository as ledger
from app.users import repository as users
from app.videos import repository as videos

BIND = re.compile(r"(?<![:\w]):(\w+)")


class Positional:
    """A `:name` statement as `$n` text plus the order its values go in."""

    def __init__(self, text: str) -> None:
        self.names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match[1]
            if name not in self.names:
                self.names.append(name)
            return f"${self.names.index(name) + 1}"

        self.sql = BIND.sub(number, text)

    @classmethod
    def of(cls, clause: Any) -> "Positional":
        if isinstance(clause, Statement):
            return cls(clause.text.text)
        element = clause if isinstance(clause, TextClause) else clause.element
        return cls(element.text)

    def args(self, **values: Any) -> list[Any]:
        return [values[name] for name in self.names]


APPLY_MOVEMENT = Positional.of(ledger.APPLY_MOVEMENT)
# The app's create and webhook statements (see floor.create_replay / webhook_replay).
USER_BY_KEY_HASH = users.BY_KEY_HASH
CREATE_VIDEO = videos.CREATE
FINISH_BY_FAL_REQUEST = videos.FINISH_BY_FAL_REQUEST

# The floor's owner lock (the app's create statement locks the row by its UPDATE instead).
LOCK_OWNER = 'SELECT 1 FROM "users" WHERE "id" = $1 FOR UPDATE'

# The video row as the floor inserts it: the columns without defaults, and the request's.
INSERT_VIDEO = """
    INSERT INTO "videos" ("userId", "modelId", "kind", "prompt", "duration", "aspectRatio",
                          "creditsCharged", "idempotencyKey", "requestFingerprint")
    VALUES ($1, $2, 'text-to-video', $3, $4, '16:9', $5, $6, $7)
    RETURNING "id"
"""

# Webhook floor: one UPDATE locks and finishes the job if it is still active.
FINISH_VIDEO = """
    UPDATE "videos" SET "status" = $2, "videoUrl" = $3, "videoMetadata" = $4,
        "errorCode" = $5, "errorMessage" = $6, "queuePosition" = NULL,
        "lastEventAt" = now(), "completedAt" = now(), "updatedAt" = now()
    WHERE "falRequestId" = $1 AND "status" IN ('pending', 'queued', 'processing')
    RETURNING "id", "userId", "creditsCharged"
"""

INSERT_USERS = """
    INSERT INTO "users" ("email", "apiKeyHash")
    SELECT * FROM unnest($1::text[], $2::text[])
    RETURNING "id"
"""

# Jobs waiting for a webhook: `queued` rows with a Fal request id "<prefix>-<n>", owned
# round-robin by `owners`.
SEED_QUEUED = """
    INSERT INTO "videos" ("userId", "modelId", "kind", "prompt", "duration", "aspectRatio",
                          "status", "falRequestId", "creditsCharged", "idempotencyKey",
                          "requestFingerprint")
    SELECT ($1::uuid[])[1 + g % cardinality($1::uuid[])], $2, 'text-to-video',
           'a queued benchmark job', 5, '16:9', 'queued', $3 || '-' || g, 140, $3 || '-' || g,
           'bench'
    FROM generate_series(1, $4) AS g
"""

# Finished history for one user: one video per second going back from $5, every 20th failed.
# Deterministic ids (md5 of the number), so the ledger rows below can point at them.
SEED_HISTORY_VIDEOS = """
    INSERT INTO "videos" ("id", "userId", "modelId", "kind", "prompt", "duration", "aspectRatio",
                          "status", "falRequestId", "videoUrl", "videoMetadata", "errorCode",
                          "errorMessage", "creditsCharged", "idempotencyKey", "requestFingerprint",
                          "submitAttempts", "createdAt", "updatedAt", "completedAt")
    SELECT md5($6 || g)::uuid, $1, $2, 'text-to-video',
           'a benchmark prompt, a cat surfing at sunset, take ' || g, 5, '16:9',
           CASE WHEN g % 20 = 0 THEN 'failed' ELSE 'completed' END,
           $6 || g,
           CASE WHEN g % 20 = 0 THEN NULL ELSE 'https://cdn.example.com/v/' || g || '.mp4' END,
           CASE WHEN g % 20 = 0 THEN NULL
                ELSE '{"content_type": "video/mp4", "file_size": 1048576}'::jsonb END,
           CASE WHEN g % 20 = 0 THEN 'fal_error' END,
           CASE WHEN g % 20 = 0 THEN 'the model failed' END,
           140, $6 || g, 'bench', 1, t, t + interval '90 seconds', t + interval '90 seconds'
    FROM generate_series($3::int, $4::int) AS g,
         LATERAL (SELECT $5::timestamptz - g * interval '1 second') AS at(t)
"""
SEED_HISTORY_LEDGER = """
    INSERT INTO "creditTransactions" ("userId", "amount", "balanceAfter", "kind",
                                      "idempotencyKey", "reason", "videoId", "createdAt")
    SELECT $1, m.amount, 1000000000, m.kind, 'video:' || md5($5 || g)::uuid || ':' || m.kind,
           'video kling-v2-master-t2v 5s', md5($5 || g)::uuid, t + m.later
    FROM generate_series($2::int, $3::int) AS g,
         LATERAL (SELECT $4::timestamptz - g * interval '1 second') AS at(t),
         LATERAL (VALUES (-140, 'debit', interval '0 seconds'),
                         (140, 'refund', interval '90 seconds')) AS m(amount, kind, later)
    WHERE m.kind = 'debit' OR g % 20 = 0
"""

# The reads, as the app sends them (read off the statement log).
LIST_PAGE = """
    SELECT "videos".*, "models"."slug"
    FROM "videos" JOIN "models" ON "models"."id" = "videos"."modelId"
    WHERE "videos"."userId" = $1 ORDER BY "videos"."createdAt" DESC, "videos"."id" DESC LIMIT $2
"""
LIST_PAGE_WITH_STATUS = """
    SELECT "videos".*, "models"."slug"
    FROM "videos" JOIN "models" ON "models"."id" = "videos"."modelId"
    WHERE "videos"."userId" = $1 AND "videos"."status" = $3
    ORDER BY "videos"."createdAt" DESC, "videos"."id" DESC LIMIT $2
"""
LEDGER_PAGE = """
    SELECT "id", "userId", "amount", "balanceAfter", "kind", "idempotencyKey", "reason", "period",
           "videoId", "createdAt"
    FROM "creditTransactions" WHERE "userId" = $1
    ORDER BY "createdAt" DESC, "id" DESC LIMIT $2
"""
BALANCE = Positional.of(ledger.BALANCE)
