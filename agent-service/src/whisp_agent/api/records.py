"""What runs leave behind for the caller: session history, token usage, saved notes.

Each route reads the caller's own records; only `/usage?all_users=true` reaches further,
and only for a caller that `reads_all_users`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from whisp_agent.api.deps import CallerDep, RuntimeDep, SettingsDep, StoreDep, reads_all_users
from whisp_agent.sessions import Turn
from whisp_agent.store import Note, UsageTotal
from whisp_shared.http_errors import ERROR_RESPONSES

records_router = APIRouter(responses=ERROR_RESPONSES)


class History(BaseModel):
    session_id: str
    turns: list[Turn]


@records_router.get("/sessions/{session_id}", tags=["sessions"])
async def session_history(session_id: str, caller: CallerDep, runtime: RuntimeDep) -> History:
    """The caller's own session, each answer attributed to the agent (and stage) that gave it."""
    turns = await runtime.sessions.history(caller.user_id, session_id)
    return History(session_id=session_id, turns=turns)


@records_router.get("/usage", tags=["usage"])
async def usage(
    caller: CallerDep,
    store: StoreDep,
    settings: SettingsDep,
    by: Annotated[Literal["agent", "session", "user"], Query()] = "agent",
    all_users: bool = False,
) -> list[UsageTotal]:
    """Tokens, requests, runs and estimated cost; a user sees their own, a service all."""
    user = None if (all_users and reads_all_users(caller, settings)) else caller.user_id
    return await store.usage_totals(by, user_id=user)


@records_router.get("/notes", tags=["tools"])
async def notes(caller: CallerDep, store: StoreDep) -> list[Note]:
    """What the note tool saved for the caller."""
    return await store.notes(caller.user_id)
