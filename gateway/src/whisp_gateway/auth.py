"""Who is calling: API tokens, browser session cookies, and loopback single-user mode.

- Services send `Authorization: Bearer <token>` (tokens from `whisp users add`).
- Browsers log in once with a token and then carry an HttpOnly, SameSite=Strict cookie
  holding the signed user id (the token itself never sits in the browser).
- With no users at all and a gateway bound to loopback, everyone is the single local
  user, so `make run` needs no login; the first `whisp users add` ends that mode.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import HTTPConnection

from whisp_gateway.repository import Repository
from whisp_gateway.repository.models import User
from whisp_gateway.settings import GatewaySettings
from whisp_shared.caller import LOCAL_USER_ID, USER_HEADER, bearer, token_matches
from whisp_shared.errors import unauthorized
from whisp_shared.netutil import is_loopback

COOKIE = "whisp_session"
SESSION_MAX_AGE_S = 30 * 24 * 3600
LOCAL_USER = User(id=LOCAL_USER_ID, name=LOCAL_USER_ID)

bearer_scheme = HTTPBearer(auto_error=False)


def _serializer(settings: GatewaySettings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.session_secret.get_secret_value(), salt="session")


def set_session_cookie(response: Response, settings: GatewaySettings, user: User) -> None:
    response.set_cookie(
        COOKIE,
        _serializer(settings).dumps(user.id),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> User:
    return await authenticate(request, credentials.credentials if credentials else None)


async def authenticate(conn: HTTPConnection, token: str | None) -> User:
    """The caller of a request or a WebSocket: its API token (or the service token acting
    for a user), else its session cookie, else the single local user when there is one."""
    settings: GatewaySettings = conn.app.state.settings
    repo: Repository = conn.app.state.repo
    if token is not None:
        acting = service_acting_for(conn, settings, token)
        if acting is not None:
            return acting
        user = await repo.user_for_token(token)
        if user is not None:
            return user
        if await single_user_mode(settings, repo):
            return LOCAL_USER  # any key works before the first user exists (OpenAI SDKs need one)
        raise unauthorized("this API token is not valid")
    cookie = conn.cookies.get(COOKIE)
    if cookie:
        try:
            user_id = _serializer(settings).loads(cookie, max_age=SESSION_MAX_AGE_S)
        except (BadSignature, SignatureExpired):
            raise unauthorized("your session has expired; log in again") from None
        user = await repo.user_by_id(str(user_id))
        if user is None:
            raise unauthorized("this account no longer exists")
        return user
    if await single_user_mode(settings, repo):
        return LOCAL_USER
    raise unauthorized("log in with your API token (Authorization: Bearer …)")


def service_acting_for(
    request: HTTPConnection, settings: GatewaySettings, token: str
) -> User | None:
    """A sibling service (the agent service's transcript search) acting for a user: it
    proves itself with the service token and names the user in `X-Whisp-User`."""
    expected = settings.service_token
    if expected is None or not token_matches(bearer(token), expected):
        return None
    user_id = request.headers.get(USER_HEADER)
    if not user_id:
        raise unauthorized(f"a service call must name its user in {USER_HEADER}")
    return User(id=user_id, name=user_id)


async def single_user_mode(settings: GatewaySettings, repo: Repository) -> bool:
    return is_loopback(settings.host) and await repo.count_users() == 0


CurrentUser = Annotated[User, Depends(current_user)]
