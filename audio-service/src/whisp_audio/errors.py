"""Refusals with a stable code, a message a person can act on, and an HTTP status.

Free of any web framework, so the core (ingest, upload checks) can raise them and the
API layer only has to render them.
"""

from __future__ import annotations

from collections.abc import Mapping

from whisp_shared.errors import WhispError


class ApiError(WhispError):
    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code
        self.headers = dict(headers or {})


def not_found() -> ApiError:
    """One answer for unknown and foreign ids alike, so ids cannot be probed."""
    return ApiError(404, "not_found", "no recording with this id")
