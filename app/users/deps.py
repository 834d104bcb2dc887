"""Who is calling: a user by API key or by the frontend's JWT, or an operator by ADMIN_TOKEN."""

import uuid
from typing import Annotated, Literal

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.config import Settings
from app.core.deps import DbDep, DriverDep
from app.core.errors import Forbidden, Unauthorized
from app.core.security import same_secret
from app.users import service
from app.users.service import Caller
from app.users.tokens import InvalidToken, TokenVerifier, looks_like_jwt

bearer = HTTPBearer(
    auto_error=False,
    description="A user's API key or a JWT from the frontend's identity provider, "
    "or ADMIN_TOKEN for /api/admin",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthorized(
            "missing bearer token (Authorization: Bearer <api key>)", headers=CHALLENGE
        )
    return credentials.credentials


def _token_verifier(request: Request) -> TokenVerifier:
    # Made on first use from the app's settings and kept on the app (no await in between, so
    # one per app); its JWKS cache lives as long as the app.
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        verifier = TokenVerifier(request.app.state.settings)
        request.app.state.token_verifier = verifier
    return verifier


async def _caller_by_user_id(driver: asyncpg.Connection, user_id: uuid.UUID) -> Caller:
    # Before any transaction of the request: one indexed read, as for keys.
    caller = await service.caller_by_id(driver, user_id)
    if caller is None:
        raise InvalidToken("the token's user does not exist")
    return caller


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None, driver: asyncpg.Connection
) -> Caller:
    token = _token(credentials)
    settings: Settings = request.app.state.settings
    if same_secret(token, settings.admin_token):
        raise Forbidden("the admin token has no user account; call with a user's API key")
    if looks_like_jwt(token):
        # The frontend's sign-in: no crypto and no key fetch ever runs for an API key.
        user_id = await _token_verifier(request).user_id(token)
        user = await _caller_by_user_id(driver, user_id)
    else:
        # Before any transaction of the request: one indexed read needs none.
        found = await service.caller_by_api_key(driver, token)
        if found is None:
            raise Unauthorized("invalid API key", headers=CHALLENGE)
        user = found
    request.state.user_id = str(user.id)
    return user


async def current_user(request: Request, credentials: BearerDep, db: DbDep) -> Caller:
    """The caller, on the request's session-pool connection (the work's too)."""
    return await _authenticate(request, credentials, db.driver)


async def current_user_on_driver(
    request: Request, credentials: BearerDep, driver: DriverDep
) -> Caller:
    """The caller, on the hot path's driver-pool connection (the work's too)."""
    return await _authenticate(request, credentials, driver)


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
# The same caller for the hot paths, which run on DriverDep.
CurrentUserOnDriver = Annotated[Caller, Depends(current_user_on_driver)]
AdminPrincipal = Annotated[Literal["admin"], Depends(admin_principal)]
