"""`Annotated` dependencies for the REST routes: the runtime, the caller, the store.

Who the caller is: services (the gateway, the CLI) authenticate with the service token when
one is configured, and name the user they act for in `X-Whisp-User`. In local mode without a
token, a missing header means the desk user `local`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header

from whisp_agent.errors import AgentError
from whisp_agent.runtime import AgentRuntime
from whisp_agent.settings import AgentSettings
from whisp_agent.store import Store
from whisp_shared.service import app_state

LOCAL_USER = "local"


@dataclass(frozen=True)
class Caller:
    user_id: str
    service: bool
    """Authenticated with the service token (may read across users)."""


def get_caller(
    settings: Annotated[AgentSettings, Depends(app_state("settings", AgentSettings))],
    x_whisp_user: Annotated[str | None, Header(max_length=128)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    token = settings.service_token
    service = False
    if token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            given.encode(), token.get_secret_value().encode()
        ):
            raise AgentError(
                "a service token is required: Authorization: Bearer <token>",
                code="unauthorized",
                status=401,
            )
        service = True
    user = (x_whisp_user or "").strip()
    if not user:
        if settings.mode != "local":
            raise AgentError("X-Whisp-User is required", code="missing_user", status=400)
        user = LOCAL_USER
    return Caller(user_id=user, service=service or settings.mode == "local")


RuntimeDep = Annotated[AgentRuntime, Depends(app_state("runtime", AgentRuntime))]
SettingsDep = Annotated[AgentSettings, Depends(app_state("settings", AgentSettings))]
StoreDep = Annotated[Store, Depends(app_state("store", Store))]
CallerDep = Annotated[Caller, Depends(get_caller)]
