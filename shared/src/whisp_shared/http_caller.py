"""The server side of `whisp_shared.caller`: one FastAPI dependency every service declares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from whisp_shared.caller import (
    LOCAL_USER_ID,
    USER_HEADER,
    USER_ID_PATTERN,
    Caller,
    CallerPolicy,
    token_matches,
)
from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError, unauthorized


def require_caller(
    request: Request,
    x_whisp_user: Annotated[str | None, Header(max_length=128, pattern=USER_ID_PATTERN)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    policy: CallerPolicy = request.app.state.caller_policy
    if policy.token is not None and not token_matches(authorization, policy.token):
        raise unauthorized("a valid service token is required: Authorization: Bearer <token>")
    if x_whisp_user:
        return Caller(user_id=x_whisp_user, trusted=False)
    if policy.user_required:
        raise WhispError(
            f"{USER_HEADER} is required: name the user this call acts for",
            code=ErrorCode.MISSING_USER,
            status=400,
        )
    return Caller(user_id=LOCAL_USER_ID, trusted=True)


CallerDep = Annotated[Caller, Depends(require_caller)]
