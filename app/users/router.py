from fastapi import APIRouter, Response

from app.core.deps import SessionDep
from app.core.errors import Forbidden, Unauthorized, problem_responses
from app.users import service
from app.users.deps import AdminPrincipal
from app.users.schemas import UserCreate, UserCreated

router = APIRouter(tags=["users"])


@router.post(
    "/api/admin/users",
    status_code=201,
    response_model=UserCreated,
    responses={
        200: {"model": UserCreated, "description": "`rotate_existing`: the user's new key"},
        **problem_responses(Unauthorized, Forbidden, service.EmailTaken),
    },
)
async def create_user(
    body: UserCreate, response: Response, session: SessionDep, _: AdminPrincipal
) -> UserCreated:
    """Create a user; the response carries its API key, which is never shown again."""
    if body.rotate_existing and (existing := await service.find_by_email(session, body.email)):
        api_key = await service.rotate_api_key(session, existing)
        response.status_code = 200
        user = existing
    else:
        user, api_key = await service.create_user(session, body.email)
    return UserCreated(
        id=user.id, email=user.email, api_key=api_key, credit_balance=user.credit_balance
    )
