"""The real `openai` client, pointed at the gateway, works unchanged for every response format.

It goes through the whole stack: gateway -> audio service -> bus -> a worker -> gateway.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.support.processes import WhispUp
from tests.support.speech import SENTENCES, synthesize, word_error_rate

pytestmark = pytest.mark.e2e
TIMESTAMP = r"\d\d:\d\d:\d\d[.,]\d{3} --> \d\d:\d\d:\d\d[.,]\d{3}"


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("stack")
    up = WhispUp(
        tmp / "data",
        tmp / "logs",
        workers=1,
        env={"WHISP_WEB__RATE_LIMIT": "1000/minute"},
        unset=("REDIS_URL", "DATABASE_URL"),
        stop_timeout=90,
    )
    with up:
        yield f"{up.url}/v1"
    assert not up.killed, f"whisp up did not stop in 90 s:\n{up.output[-3000:]}"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    utt = next(u for u in SENTENCES if u.id == "late-for-dinner")
    return utt.text, synthesize(utt, tmp_path_factory.mktemp("speech"))


@pytest.fixture
def client(gateway_url: str) -> OpenAI:
    # No users exist and the gateway is on loopback: any key works (single-user mode).
    return OpenAI(base_url=gateway_url, api_key="sk-anything", max_retries=0, timeout=120)


def transcribe(client: OpenAI, path: Path, **kwargs: object) -> object:
    with path.open("rb") as fh:
        return client.audio.transcriptions.create(model="whisper-1", file=fh, **kwargs)  # type: ignore[call-overload]


def test_models_are_listed(client: OpenAI) -> None:
    assert "whisper-1" in [m.id for m in client.models.list().data]


def test_json(client: OpenAI, clip: tuple[str, Path]) -> None:
    text, path = clip
    result = transcribe(client, path, response_format="json", language="en", temperature=0)
    assert word_error_rate(text, result.text) <= 0.25  # type: ignore[attr-defined]


def test_text(client: OpenAI, clip: tuple[str, Path]) -> None:
    text, path = clip
    result = transcribe(client, path, response_format="text")
    assert isinstance(result, str)
    assert word_error_rate(text, result) <= 0.25


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles(client: OpenAI, clip: tuple[str, Path], fmt: str) -> None:
    text, path = clip
    result = transcribe(client, path, response_format=fmt)
    assert isinstance(result, str)
    assert re.search(TIMESTAMP, result)
    assert result.startswith("WEBVTT") == (fmt == "vtt")
    spoken = " ".join(
        line for line in result.splitlines()
        if line and not re.fullmatch(TIMESTAMP, line) and not line.isdigit() and line != "WEBVTT"
    )  # fmt: skip
    assert word_error_rate(text, spoken) <= 0.25


def test_verbose_json_with_words(client: OpenAI, clip: tuple[str, Path]) -> None:
    text, path = clip
    result = transcribe(
        client,
        path,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        prompt="A message to Sarah.",
    )
    assert result.language == "english"  # type: ignore[attr-defined]
    assert result.duration == pytest.approx(4.57, abs=0.2)  # type: ignore[attr-defined]
    assert result.segments  # type: ignore[attr-defined]
    words = result.words  # type: ignore[attr-defined]
    assert len(words) >= len(text.split()) - 3
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert word_error_rate(text, result.text) <= 0.25  # type: ignore[attr-defined]


def test_bad_audio_is_an_openai_error(client: OpenAI, tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 50)
    with pytest.raises(openai.APIStatusError) as raised:
        transcribe(client, junk)
    assert raised.value.status_code in (415, 422, 400)
    assert raised.value.body["code"] in ("unsupported_media_type", "undecodable_audio")  # type: ignore[index]


def test_streamed_transcription_through_the_sdk(client: OpenAI, clip: tuple[str, Path]) -> None:
    text, path = clip
    assert {"gpt-4o-transcribe", "gpt-4o-mini-transcribe"} <= {
        m.id for m in client.models.list().data
    }
    with path.open("rb") as fh:
        events = list(
            client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=fh, stream=True)
        )
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done"
    assert kinds[:-1] and set(kinds[:-1]) == {"transcript.text.delta"}
    done = events[-1]
    assert "".join(e.delta for e in events[:-1]) == done.text  # type: ignore[union-attr]
    assert word_error_rate(text, done.text) <= 0.25  # type: ignore[union-attr]
