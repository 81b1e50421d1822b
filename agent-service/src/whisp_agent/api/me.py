"""`GET /me/data` and `DELETE /me/data`: everything this service keeps for the caller's user
(sessions with their conversation, notes, usage rows), for the gateway's "export everything
of mine" and "delete everything of mine" (`whisp_shared.user_data`).

Always the caller's own user, never another's (there is no user parameter to name one).
A session is exported as `GET /sessions/{id}` shows it (the attributed turns) plus the SDK's
items (what the model saw, tool calls included), so the export holds all that is kept.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from whisp_agent.api.deps import CallerDep, RuntimeDep, StoreDep
from whisp_agent.sessions import SessionStore, Turn, close_session
from whisp_shared.http_errors import ERROR_RESPONSES
from whisp_shared.logs import get_logger
from whisp_shared.user_data import AGENT_DATA_PATH, AgentData, AgentDataDeleted

log = get_logger(__name__)

me_router = APIRouter(tags=["me"], responses=ERROR_RESPONSES)


class SessionExport(BaseModel):
    session_id: str
    turns: list[Turn]
    items: list[dict[str, Any]]
    """The SDK's memory of the session (messages, tool calls and their outputs)."""


async def _export(sessions: SessionStore, user_id: str, session_id: str) -> SessionExport:
    memory = sessions.open(user_id, session_id)
    try:
        items = [dict(item) for item in await memory.get_items()]
    finally:
        await close_session(memory)
    turns = await sessions.history(user_id, session_id)
    return SessionExport(session_id=session_id, turns=turns, items=items)


@me_router.get(AGENT_DATA_PATH)
async def export_my_data(caller: CallerDep, runtime: RuntimeDep, store: StoreDep) -> AgentData:
    """The caller's sessions (turns and the SDK's items), notes and usage rows."""
    sessions = runtime.sessions
    exported = [
        await _export(sessions, caller.user_id, session_id)
        for session_id in await sessions.session_ids(caller.user_id)
    ]
    notes, usage = await store.user_records(caller.user_id)
    return AgentData(
        sessions=[s.model_dump(mode="json") for s in exported],
        notes=[n.model_dump(mode="json") for n in notes],
        usage=[u.model_dump(mode="json") for u in usage],
    )


@me_router.delete(AGENT_DATA_PATH)
async def delete_my_data(
    caller: CallerDep, runtime: RuntimeDep, store: StoreDep
) -> AgentDataDeleted:
    """Delete all of the above for the caller, for good; again: zeros."""
    session_ids = await runtime.sessions.session_ids(caller.user_id)
    for session_id in session_ids:
        await runtime.sessions.forget(caller.user_id, session_id)
    notes, usage_rows = await store.forget_user(caller.user_id)
    log.info("deleted a user's agent data", user_id=caller.user_id,
             sessions=len(session_ids), notes=notes, usage_rows=usage_rows)  # fmt: skip
    return AgentDataDeleted(sessions=len(session_ids), notes=notes, usage_rows=usage_rows)
