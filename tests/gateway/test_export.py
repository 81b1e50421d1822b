"""`GET /api/transcripts/export`: five formats, well-formed, filtered, streamed."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import GatewayFactory, add_users
from tests.gateway.factories import answered, at, failed, recorded, transcribed
from whisp_gateway.export import CSV_FIELDS
from whisp_gateway.repository import SqlRepository
from whisp_shared.views import Transcript

TEXTS = [
    "first words in the kitchen",
    'a comma, a "quote" and\na line break',
    "kitchen timer goes off now",
    "the last thing said today",
]
SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"
VTT_TIME = r"(\d{2}):(\d{2}):(\d{2})\.(\d{3})"


async def seed_history(database_url: str) -> tuple[str, list[Any]]:
    """Alice: four transcripts with segments (oldest first), a failure, one still running."""
    token = (await add_users(database_url, "alice"))["alice"]
    repo = SqlRepository(database_url)
    alice = await repo.user_for_token(token)
    assert alice is not None
    ready = []
    for n, text in enumerate(TEXTS):
        rid = f"rec{n}"
        await repo.apply(recorded(rid, alice.id, created_at=at(n * 60), agent_id="summarizer"))
        event = transcribed(rid, text, alice.id)
        await repo.apply(event)
        ready.append(event)
    await repo.apply(answered("rec0", "about a kitchen", alice.id))
    await repo.apply(recorded("rec-failed", alice.id, created_at=at(400)))
    await repo.apply(failed("rec-failed", alice.id))
    await repo.apply(recorded("rec-running", alice.id, created_at=at(500)))
    await repo.close()
    return token, ready


def seconds(match: tuple[str, ...]) -> float:
    h, m, s, ms = (int(x) for x in match)
    return h * 3600 + m * 60 + s + ms / 1000


def parse_cues(body: str, fmt: str) -> list[tuple[float, float, str]]:
    if fmt == "vtt":
        assert body.startswith("WEBVTT\n\n")
        body = body.removeprefix("WEBVTT\n\n")
    time_re = SRT_TIME if fmt == "srt" else VTT_TIME
    cues = []
    for n, block in enumerate(body.strip("\n").split("\n\n"), 1):
        lines = block.split("\n")
        if fmt == "srt":
            assert lines.pop(0) == str(n)
        timing = re.fullmatch(f"{time_re} --> {time_re}", lines[0])
        assert timing, lines[0]
        start, end = seconds(timing.groups()[:4]), seconds(timing.groups()[4:])
        assert lines[1:], block
        cues.append((start, end, " ".join(lines[1:])))
    return cues


@pytest.fixture
async def history(sqlite_url: str) -> tuple[str, list[Any]]:
    return await seed_history(sqlite_url)


async def export(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    response = await client.get("/api/transcripts/export", params=params)
    assert response.status_code == 200, response.text
    fmt = params.get("format", "jsonl")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="whisptt-transcripts.{fmt}"'
    )
    assert "content-length" not in response.headers  # streamed, not built whole
    assert response.headers["transfer-encoding"] == "chunked"
    return response


async def test_every_format_is_well_formed(
    gateway: GatewayFactory, history: tuple[str, list[Any]]
) -> None:
    token, ready = history
    with gateway() as url:
        async with httpx.AsyncClient(
            base_url=url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            jsonl = await export(client, format="jsonl")
            assert jsonl.headers["content-type"] == "application/x-ndjson"
            lines = jsonl.text.splitlines()
            items = [Transcript.model_validate(json.loads(line)) for line in lines]
            assert [t.recording_id for t in items] == [
                "rec-running", "rec-failed", "rec3", "rec2", "rec1", "rec0",
            ]  # fmt: skip
            assert items[-1].segments == ready[0].segments
            assert items[-1].answers[0].output == "about a kitchen"

            body = (await export(client, format="csv")).text
            rows = list(csv.DictReader(io.StringIO(body)))
            assert list(rows[0].keys()) == CSV_FIELDS
            assert [r["recording_id"] for r in rows] == [t.recording_id for t in items]
            by_id = {r["recording_id"]: r for r in rows}
            assert by_id["rec1"]["text"] == TEXTS[1]  # commas, quotes, newlines survive
            assert by_id["rec0"]["answer"] == "about a kitchen"
            assert by_id["rec-failed"]["status"] == "failed"
            assert by_id["rec0"]["agent_id"] == "summarizer"

            txt = (await export(client, format="txt")).text
            assert txt.startswith("[2025-03-01 12:08:20] \n")  # the running one, no text yet
            assert "[2025-03-01 12:00:00] first words in the kitchen\n" in txt
            assert "  -> summarizer: about a kitchen\n" in txt

            for fmt in ("srt", "vtt"):
                response = await export(client, format=fmt)
                assert response.headers["content-type"].startswith(
                    "application/x-subrip" if fmt == "srt" else "text/vtt"
                )
                cues = parse_cues(response.text, fmt)
                expected = [s.text for event in ready for s in event.segments]
                assert [c[2] for c in cues] == expected  # oldest recording first
                for (start, end, _), (next_start, _, _) in itertools.pairwise(cues):
                    assert start < end <= next_start  # one monotonic timeline
                total = sum(event.audio_duration_s for event in ready[:-1])
                last_first = ready[-1].segments[0]
                assert cues[-len(ready[-1].segments)][0] == pytest.approx(
                    total + last_first.start, abs=0.001
                )


async def test_exports_follow_the_filters(
    gateway: GatewayFactory, history: tuple[str, list[Any]]
) -> None:
    token, _ = history
    with gateway() as url:
        async with httpx.AsyncClient(
            base_url=url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            lines = (await export(client, format="jsonl", q="KITCHEN")).text.splitlines()
            assert [json.loads(line)["recording_id"] for line in lines] == ["rec2", "rec0"]
            timer = await export(client, format="csv", q="timer")
            rows = list(csv.DictReader(io.StringIO(timer.text)))
            assert [r["recording_id"] for r in rows] == ["rec2"]
            txt = (await export(client, format="txt", q="kitchen first")).text
            assert txt.splitlines() == [
                "[2025-03-01 12:00:00] first words in the kitchen",
                "  -> summarizer: about a kitchen",
            ]
            for fmt in ("srt", "vtt"):
                cues = parse_cues((await export(client, format=fmt, q="kitchen")).text, fmt)
                assert " ".join(c[2] for c in cues) == f"{TEXTS[0]} {TEXTS[2]}"
                assert cues[0][0] == 0.0
            nothing = await export(client, format="srt", q="absent")
            assert nothing.text == ""
            empty_vtt = await export(client, format="vtt", q="absent")
            assert empty_vtt.text.strip() == "WEBVTT"

            failed_only = (await export(client, format="jsonl", status="failed")).text
            assert [json.loads(x)["recording_id"] for x in failed_only.splitlines()] == [
                "rec-failed"
            ]
            window = await export(
                client, format="csv", since=at(60).isoformat(), until=at(180).isoformat()
            )
            assert [r["recording_id"] for r in csv.DictReader(io.StringIO(window.text))] == [
                "rec2", "rec1",
            ]  # fmt: skip

            for bad in ({"format": "pdf"}, {"q": "x" * 201}, {"since": "yesterday"}):
                response = await client.get("/api/transcripts/export", params=bad)
                assert response.status_code == 422, (bad, response.text)
                assert response.json()["code"] == "invalid_request"


async def test_a_long_history_streams_in_full(gateway: GatewayFactory, sqlite_url: str) -> None:
    from whisp_gateway.repository import sql

    total = 2 * sql.EXPORT_BATCH + 50
    repo = SqlRepository(sqlite_url)
    await repo.create_schema()
    for n in range(total):
        await repo.apply(transcribed(f"r{n:04d}", f"line number {n}", "local", created_at=at(n)))
    await repo.close()
    with gateway() as url:
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as client,
            client.stream("GET", "/api/transcripts/export", params={"format": "csv"}) as response,
        ):
            assert response.status_code == 200
            chunks = [chunk async for chunk in response.aiter_text()]
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert [r["recording_id"] for r in rows] == [f"r{n:04d}" for n in reversed(range(total))]
