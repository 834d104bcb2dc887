"""The one way money moves: SQL fragments that every balance-moving statement composes.

A movement is the user's balance changed under its row lock (never below zero) and one
appended `"creditTransactions"` row carrying the new balance. Admin movements
(credits/repository.py APPLY_MOVEMENT), a video's debit (videos/repository.py CREATE) and its
refund (videos/repository.py FINISH) are each one statement built from these fragments, so
the rules are written once and the statement that changes a job moves its money with it.
"""

from typing import Literal

VideoMovement = Literal["debit", "refund"]
# No grant may lift a balance past this (10^12 credits: US$10 billion). Far below BIGINT's
# range, so a refund, which may land above it by what is still charged, can never overflow.
MAX_BALANCE = 10**12
# A video's ledger keys: at most one debit and one refund per video (unique key).
VIDEO_KEY = "video:{video_id}:{kind}"


def video_key(video_id: object, kind: VideoMovement) -> str:
    """The idempotency key of a video's debit or refund."""
    return VIDEO_KEY.format(video_id=video_id, kind=kind)


def video_key_sql(video_id: str, kind: VideoMovement) -> str:
    """`video_key` as an SQL expression over the SQL expression `video_id`."""
    before, after = VIDEO_KEY.split("{video_id}")
    suffix = after.format(kind=kind).replace(":", "\\:")  # `\:` is not a bind parameter
    return f"'{before}' || CAST({video_id} AS text) || '{suffix}'"


def move_balance(
    *,
    user: str,
    amount: str,
    guard: str = "TRUE",
    source: str | None = None,
    also_set: str = "",
    also_return: str = "",
) -> str:
    """An UPDATE moving `user`'s balance by `amount` (SQL expressions), refusing to go below
    zero or when `guard` is false; returns "userId" and "balanceAfter" (and `also_return`).

    The UPDATE takes the user's row lock: every movement of one user is serialized by it.
    """
    from_source = f"FROM {source}" if source else ""
    return f"""
        UPDATE "users"
        SET "creditBalance" = "users"."creditBalance" + {amount}, "updatedAt" = now(){also_set}
        {from_source}
        WHERE "users"."id" = {user} AND "users"."creditBalance" + {amount} >= 0 AND {guard}
        RETURNING "users"."id" AS "userId", "users"."creditBalance" AS "balanceAfter"{also_return}
    """


def append_entry(
    *,
    moved: str,
    amount: str,
    kind: str,
    key: str,
    reason: str,
    video_id: str = "NULL",
    period: str = "NULL",
    returning: str = "",
) -> str:
    """The ledger row of each movement in the CTE `moved` (from `move_balance`), aliased `m`."""
    return f"""
        INSERT INTO "creditTransactions"
            ("userId", "amount", "balanceAfter", "kind", "idempotencyKey", "reason", "period",
             "videoId")
        SELECT m."userId", {amount}, m."balanceAfter", {kind}, {key}, {reason}, {period},
            {video_id}
        FROM {moved} m
        {returning}
    """


def append_video_entry(
    kind: VideoMovement, *, moved: str, amount: str, video_id: str, reason: str
) -> str:
    """`append_entry` for a video's debit or refund, keyed by `video_key`."""
    return append_entry(
        moved=moved,
        amount=amount,
        kind=f"'{kind}'",
        key=video_key_sql(video_id, kind),
        reason=reason,
        video_id=video_id,
    )
