"""Who is calling the audio service.

The audio service sits behind the gateway: the gateway authenticates people and
passes the user id in `X-Whisp-User`, proving itself with the service token. With no
token configured the service must listen on loopback only (checked at start), where a
caller without the header is the single local user.

A call that passed the token check *without* naming a user is a trusted service acting
for nobody in particular — a transcription worker fetching `GET /audio/{id}` — and may
read any recording. A call that names a user is scoped to that user's recordings. (With
no token, anything on loopback could name any user anyway; the scoping then protects
honest callers from each other's mistakes, the token is what protects a network.)
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from whisp_audio.settings import AudioSettings
from whisp_shared.netutil import is_loopback

LOCAL_USER = "local"
USER_HEADER = "X-Whisp-User"


@dataclass(frozen=True)
class Caller:
    user_id: str
    """Owner of what this call creates."""
    trusted: bool
    """A service acting for no user: may read and delete any recording."""

    def may_access(self, owner: str) -> bool:
        return self.trusted or owner == self.user_id


def check_exposure(settings: AudioSettings) -> None:
    """Refuse to serve audio beyond loopback without a service token."""
    if not is_loopback(settings.host) and settings.service_token is None:
        raise RuntimeError(
            f"audio.host is {settings.host} (beyond loopback) but no service token is set: "
            "set WHISP_AUDIO__SERVICE_TOKEN"
        )


def caller(
    request: Request,
    x_whisp_user: Annotated[str | None, Header(max_length=128, pattern=r"^[\w.@-]+$")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    settings: AudioSettings = request.app.state.settings
    token = settings.service_token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}"
        if authorization is None or not hmac.compare_digest(
            authorization.encode(), expected.encode()
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail={"code": "unauthorized", "message": "a valid service token is required"},
                headers={"WWW-Authenticate": "Bearer"},
            )
    if x_whisp_user:
        return Caller(user_id=x_whisp_user, trusted=False)
    return Caller(user_id=LOCAL_USER, trusted=True)


CallerDep = Annotated[Caller, Depends(caller)]
