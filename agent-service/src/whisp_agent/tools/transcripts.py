"""`search_transcripts`: search the caller's own transcript history through the gateway.

The gateway owns the transcript repository and per-user isolation; this tool asks it as a
service (bearer service token) on behalf of the user (`X-Whisp-User`), so the gateway's own
filter decides what is visible. The user id comes from `ToolDeps`, never from the model.

Contract: `GET {gateway}/api/transcripts?q=…&limit=N` → a JSON list of transcripts, or an
object with the list under `items` (each with at least `text`; `recording_id`,
`created_at` used when present).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from whisp_agent.tools.base import ToolDeps, ToolFailure, ToolSpec
from whisp_shared.caller import service_headers


class _Hit(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str
    recording_id: str | None = None
    created_at: str | None = None


class _Page(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[_Hit]


class GatewayTranscripts:
    """A `TranscriptSearch` over the gateway's repository API."""

    def __init__(
        self, base_url: str, token: SecretStr | None, client: httpx.AsyncClient, timeout_s: float
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._client = client
        self._timeout = timeout_s

    async def search(self, user_id: str, query: str, limit: int) -> list[dict[str, Any]]:
        try:
            response = await self._client.get(
                f"{self.base_url}/api/transcripts",
                params={"q": query, "limit": limit},
                headers=service_headers(self._token, user_id),
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise ToolFailure(f"transcript history is unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise ToolFailure(f"transcript history answered HTTP {response.status_code}")
        try:
            body = response.json()
            page = _Page.model_validate({"items": body} if isinstance(body, list) else body)
        except (ValueError, ValidationError) as exc:
            raise ToolFailure("transcript history sent an unreadable answer") from exc
        return [hit.model_dump() for hit in page.items[:limit]]


class SearchArgs(BaseModel):
    query: str = Field(min_length=1, max_length=200, description="Words to look for.")
    limit: int = Field(default=5, ge=1, le=20, description="Most results to return.")


async def search_transcripts(deps: ToolDeps, args: SearchArgs) -> str:
    if deps.transcripts is None:
        raise ToolFailure("transcript history is not available in this service")
    hits = await deps.transcripts.search(deps.user_id, args.query, args.limit)
    if not hits:
        return f"No transcripts of yours mention {args.query!r}."
    lines = [f"- [{hit.get('created_at') or '?'}] {hit['text'].strip()[:500]}" for hit in hits]
    return f"{len(hits)} of your transcripts match {args.query!r}:\n" + "\n".join(lines)


TOOL = ToolSpec(
    name="search_transcripts",
    description="Search the user's own earlier transcripts (what they dictated before).",
    args=SearchArgs,
    run=search_transcripts,
)
