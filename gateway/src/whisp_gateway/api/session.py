"""Log in with an API token (browser cookie), log out, and who am I."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from whisp_gateway.api.deps import RepoDep, SettingsDep
from whisp_gateway.api.responses import JSON_BODY, SIGNED_IN, errors
from whisp_gateway.auth import (
    CurrentUser,
    clear_session_cookie,
    set_session_cookie,
    single_user_mode,
)
from whisp_gateway.repository.models import User
from whisp_shared.errors import unauthorized

router = APIRouter(prefix="/api", tags=["session"])


class Login(BaseModel):
    token: str = Field(min_length=8, max_length=256)


class Me(BaseModel):
    user: User
    single_user: bool


@router.post(
    "/login",
    responses=errors(
        *JSON_BODY, 401, 500, notes={401: "`unauthorized`: this API token is not valid"}
    ),
)
async def login(body: Login, response: Response, repo: RepoDep, settings: SettingsDep) -> Me:
    user = await repo.user_for_token(body.token)
    if user is None:
        raise unauthorized("this API token is not valid")
    set_session_cookie(response, settings, user)
    return Me(user=user, single_user=False)


@router.post("/logout", status_code=204, responses=errors(500))
async def logout(response: Response) -> None:
    clear_session_cookie(response)


@router.get("/me", responses=errors(*SIGNED_IN))
async def me(user: CurrentUser, repo: RepoDep, settings: SettingsDep) -> Me:
    return Me(user=user, single_user=await single_user_mode(settings, repo))
