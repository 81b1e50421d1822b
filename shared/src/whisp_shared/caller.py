"""Who is calling a service behind the gateway: one header pair, one client helper, one check.

The gateway authenticates people; every service behind it trusts a caller that proves
itself with the shared service token (`Authorization: Bearer <token>`) and names the user
it acts for in `X-Whisp-User`. With no token configured a service listens on loopback only
(each checks that at start), where a call without the header is the single local user.

A call that passed the token check *without* naming a user is a trusted service acting for
nobody in particular (a transcription worker fetching `GET /audio/{id}`) and may read
anything of that service; a call that names a user is scoped to that user.

Clients build their headers with `service_headers()`; servers declare
`whisp_shared.http_caller.CallerDep` and put a `CallerPolicy` on `app.state.caller_policy` in
`create_app()`. This module imports no web framework, so the desk clients can use it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from pydantic import SecretStr

USER_HEADER = "X-Whisp-User"
LOCAL_USER_ID = "local"
"""The single user of a machine with no accounts (loopback, no users created)."""
USER_ID_PATTERN = r"^[\w.@-]{1,128}$"


def bearer(token: str | SecretStr) -> str:
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    return f"Bearer {secret}"


def service_headers(
    token: str | SecretStr | None = None, user_id: str | None = None
) -> dict[str, str]:
    """Headers a client sends to a WhisPTT service: the token (if any) and the user."""
    headers: dict[str, str] = {}
    if token:
        headers["Authorization"] = bearer(token)
    if user_id:
        headers[USER_HEADER] = user_id
    return headers


def token_matches(authorization: str | None, token: str | SecretStr) -> bool:
    """Constant-time check of an `Authorization` header against the expected token."""
    if not authorization:
        return False
    return hmac.compare_digest(authorization.encode(), bearer(token).encode())


@dataclass(frozen=True)
class CallerPolicy:
    """How a service decides who calls it (set on `app.state.caller_policy`)."""

    token: SecretStr | None
    """The service token callers must present; None: loopback-only, no token."""
    user_required: bool = False
    """Refuse calls that name no user (400 `missing_user`) instead of treating them as
    the local user."""


@dataclass(frozen=True)
class Caller:
    user_id: str
    """Whose work this call creates or reads."""
    trusted: bool
    """A service acting for no user: may read across users."""

    def may_access(self, owner: str) -> bool:
        return self.trusted or owner == self.user_id
