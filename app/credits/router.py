from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.core.deps import SessionDep
from app.core.errors import Forbidden, Unauthorized, problem_responses
from app.core.idempotency import IDEMPOTENCY_ERRORS, IdempotencyKey, run_once
from app.core.pagination import InvalidCursor
from app.credits import service
from app.credits.schemas import CreditGrant, CreditsPage, CreditTransactionPublic
from app.users.deps import AdminPrincipal, CurrentUser
from app.users.service import UserNotFound

router = APIRouter(tags=["credits"])


@router.post(
    "/api/admin/credits",
    status_code=201,
    response_model=CreditTransactionPublic,
    responses=problem_responses(
        Unauthorized,
        Forbidden,
        UserNotFound,
        service.InsufficientCredits,
        service.CreditRollExists,
        service.BalanceLimitExceeded,
        service.DuplicateMovement,
        *IDEMPOTENCY_ERRORS,
    ),
)
async def add_credits(
    body: CreditGrant,
    request: Request,
    session: SessionDep,
    admin: AdminPrincipal,
    idempotency_key: IdempotencyKey,
) -> Response:
    """Purchase, grant, roll or adjust a user's credits. Retries with the same key replay."""

    async def operation(_: str) -> tuple[int, CreditTransactionPublic]:
        row = await service.grant(session, body, scoped_key=f"{admin}:{idempotency_key}")
        return 201, CreditTransactionPublic.of(row)

    outcome = await run_once(
        session, request, scope=admin, key=idempotency_key, body=body, operation=operation
    )
    return outcome.response()


@router.get(
    "/api/credits",
    response_model=CreditsPage,
    responses=problem_responses(Unauthorized, InvalidCursor),
)
async def my_credits(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CreditsPage:
    """The caller's balance and ledger, newest first."""
    return await service.page_for_user(session, user.id, limit=limit, cursor=cursor)
