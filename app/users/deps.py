"""Who is calling: a user by API key, or an operator by ADMIN_TOKEN."""

from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.config import Settings
from app.core.deps import DbDep
from app.core.errors import Forbidden, Unauthorized
from app.core.security import same_secret
from app.users import service
from app.users.service import Caller

bearer = HTTPBearer(auto_error=False, description="A user's API key, or ADMIN_TOKEN for /api/admin")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthorized(
            "missing bearer token (Authorization: Bearer <api key>)", headers=CHALLENGE
        )
    return credentials.credentials


async def current_user(request: Request, credentials: BearerDep, db: DbDep) -> Caller:
    token = _token(credentials)
    settings: Settings = request.app.state.settings
    if same_secret(token, settings.admin_token):
        raise Forbidden("the admin token has no user account; call with a user's API key")
    # On the driver, before the request's transaction begins: one indexed read needs none.
    user = await service.caller_by_api_key(db.driver, token)
    if user is None:
        raise Unauthorized("invalid API key", headers=CHALLENGE)
    request.state.user_id = str(user.id)
    return user


async def admin_principal(request: Request, credentials: BearerDep, db: DbDep) -> Literal["admin"]:
    settings: Settings = request.app.state.settings
    token = _token(credentials)
    if same_secret(token, settings.admin_token):
        return "admin"
    user = await service.caller_by_api_key(db.driver, token)
    if user is None:
        raise Unauthorized("invalid token", headers=CHALLENGE)
    if not user.is_admin:
        raise Forbidden("this route needs the admin token")
    return "admin"


CurrentUser = Annotated[Caller, Depends(current_user)]
AdminPrincipal = Annotated[Literal["admin"], Depends(admin_principal)]
