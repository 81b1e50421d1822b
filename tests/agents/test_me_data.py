"""`GET /me/data` and `DELETE /me/data` (`whisp_shared.user_data`): a user's sessions (turns
and the SDK's memory), notes and usage rows, exported and deleted for that user alone, with
SQLite and with Redis sessions. Real runs through the service's REST against a local
OpenAI-compatible stand-in (the tool call writes a real note), the session's real Redis."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.agents.chat_stub import ChatStub, Reply, ToolCall, calls
from tests.agents.conftest import make_settings
from whisp_agent.app import create_app
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.user_data import AGENT_DATA_PATH, AgentData, AgentDataDeleted

ALICE = {"X-Whisp-User": "alice"}
BOB = {"X-Whisp-User": "bob"}


@pytest.fixture(params=["sqlite", "redis"])
def service(request: pytest.FixtureRequest, tmp_path: Path, bus_settings: BusSettings,
            chat_stub: ChatStub):  # type: ignore[no-untyped-def]  # fmt: skip
    @asynccontextmanager
    async def run() -> AsyncIterator[httpx.AsyncClient]:
        settings = make_settings(tmp_path, chat_stub.base_url, sessions=request.param)
        app = create_app(settings, EventBus(bus_settings))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://agents") as c:
                yield c

    return run


async def chat(client: httpx.AsyncClient, stub: ChatStub, headers: dict[str, str], said: str,
               note: str) -> None:  # fmt: skip
    """One turn of the helper in session `s1`: it saves `note`, then answers."""
    stub.push(calls(ToolCall("write_note", {"text": note})), Reply(text=f"Noted: {note}."))
    body = {"agent": "helper", "input": said, "session_id": "s1"}
    response = await client.post("/chat", json=body, headers=headers)
    assert response.status_code == 200, response.text


async def export(client: httpx.AsyncClient, headers: dict[str, str]) -> AgentData:
    response = await client.get(AGENT_DATA_PATH, headers=headers)
    assert response.status_code == 200, response.text
    return AgentData.model_validate(response.json())


def texts(data: AgentData) -> str:
    return repr(data.model_dump())


async def test_export_is_mine_and_delete_leaves_nothing_of_mine_and_all_of_theirs(
    service, chat_stub: ChatStub, redis: Redis, tmp_path: Path
) -> None:
    async with service() as client:
        await chat(client, chat_stub, ALICE, "Remember the kestrel invoice", "kestrel invoice")
        await chat(client, chat_stub, BOB, "Remember the heron report", "heron report")

        mine = await export(client, ALICE)
        [session] = mine.sessions
        assert session["session_id"] == "s1"
        assert [t["text"] for t in session["turns"]] == [
            "Remember the kestrel invoice", "Noted: kestrel invoice."]  # fmt: skip
        assert any("write_note" in repr(item) for item in session["items"])  # the SDK's memory
        assert [(n["kind"], n["text"]) for n in mine.notes] == [("note", "kestrel invoice")]
        assert mine.usage and {u["user_id"] for u in mine.usage} == {"alice"}
        assert sum(u["requests"] for u in mine.usage) == 2  # the tool call, then the answer
        assert "heron" not in texts(mine) and "bob" not in texts(mine)
        theirs = await export(client, BOB)
        assert "heron report" in texts(theirs) and "kestrel" not in texts(theirs)

        deleted = await client.delete(AGENT_DATA_PATH, headers=ALICE)
        assert deleted.status_code == 200, deleted.text
        assert AgentDataDeleted.model_validate(deleted.json()) == AgentDataDeleted(
            sessions=1, notes=1, usage_rows=len(mine.usage)
        )

        assert await export(client, ALICE) == AgentData()
        assert await export(client, BOB) == theirs
        history = await client.get("/sessions/s1", headers=ALICE)
        assert history.json()["turns"] == []
        assert not await stored_anywhere(redis, tmp_path, "kestrel")
        assert await stored_anywhere(redis, tmp_path, "heron")

        # The model's memory of the session is gone too: the next turn starts afresh.
        await chat(client, chat_stub, ALICE, "What did I ask?", "nothing")
        assert "kestrel" not in repr(chat_stub.completions[-2].body["messages"])
        assert "heron" in repr(await export(client, BOB))

        again = await client.delete(AGENT_DATA_PATH, headers=ALICE)
        assert again.status_code == 200 and again.json()["notes"] == 1  # the new note only
        zeros = await client.delete(AGENT_DATA_PATH, headers=ALICE)
        assert AgentDataDeleted.model_validate(zeros.json()) == AgentDataDeleted(
            sessions=0, notes=0, usage_rows=0
        )


async def stored_anywhere(redis: Redis, folder: Path, word: str) -> bool:
    """Whether `word` is in any row of the service's SQLite files or any Redis value."""
    for path in folder.rglob("*.sqlite"):
        with sqlite3.connect(path) as db:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                rows: list[Any] = db.execute(f"SELECT * FROM {table}").fetchall()
                if word in repr(rows):
                    return True
    async for key in redis.scan_iter(match="whisp:agents:*"):
        kind = await redis.type(key)
        value: Any = (
            await redis.lrange(key, 0, -1) if kind == b"list" else await redis.hgetall(key)
            if kind == b"hash" else await redis.get(key) if kind == b"string" else None
        )  # fmt: skip
        if word in repr(value):
            return True
    return False
