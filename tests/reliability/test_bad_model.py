"""A worker that cannot load its model stays up, says it is not ready, and takes no work.

Beside a healthy worker, a second one is started with a model it cannot load: a folder
that is no CTranslate2 model at all (`missing`), or one whose `model.bin` is damaged
(`corrupt`). Ops see it on `/readyz` (503, `checks.model` false) instead of a crash loop,
and it must not read from the `transcribers` group: a worker without a model that took a
clip could only fail it. The healthy worker does every recording, each exactly once.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.reliability.rig import (
    Specs,
    client,
    consumer_names,
    count_by_recording,
    events,
    log_lines,
    private_redis,
    readyz,
    services,
    wait_until,
    write_config,
)
from tests.support.speech import Utterance
from tests.support.tools import needs_tools
from whisp_shared.codec import encode_entry
from whisp_shared.events import RecordingCompleted, TranscriptionFailed, TranscriptReady
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    needs_tools("espeak-ng", "sox", why="real speech for the clips"),
]

RECORDINGS_N = 8
WATCH_S = 6.0
"""How long the broken worker is watched after the healthy one has finished everything."""


def broken_model(folder: Path, kind: str) -> Path:
    model = folder / f"model-{kind}"
    model.mkdir(parents=True)
    if kind == "corrupt":
        (model / "config.json").write_text(json.dumps({"alignment_heads": [], "lang_ids": []}))
        (model / "model.bin").write_bytes(b"\x00not a ctranslate2 model\x00" * 1000)
    else:
        (model / "README").write_text("the model files were never copied here\n")
    return model


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_a_worker_that_cannot_load_its_model_is_not_ready_and_takes_no_work(
    short_clips: list[tuple[Utterance, Path]], tmp_path: Path, kind: str
) -> None:
    started = time.monotonic()
    audio_dir = tmp_path / "data" / "audio"  # where the harness points the workers
    audio_dir.mkdir(parents=True)
    clips = []
    for _utterance, wav in short_clips:
        clips.append(shutil.copy(wav, audio_dir / wav.name))
    with private_redis(tmp_path / "redis") as server:
        specs = Specs(write_config(tmp_path))
        model = broken_model(tmp_path, kind)
        with services([specs.worker("good")], tmp_path, server.url) as running:
            bad = running.add(
                specs.worker("bad", WHISP_TRANSCRIPTION__FASTER_WHISPER__MODEL=str(model)),
                ready=False,
            )
            # It tried (and failed) to load the model...
            wait_until(
                lambda: bool(log_lines(bad, str(model))) or bad.returncode is not None,
                60,
                "the broken worker reaching its model",
                0.2,
            )
            # ...and stays up, not ready, saying why (on /readyz, not by crash-looping).
            wait_until(
                lambda: readyz(bad.url)[0] != 0 or bad.returncode is not None,
                30,
                "the broken worker answering /readyz (or exiting)",
                0.2,
            )
            assert bad.returncode is None, (
                f"the worker without a model exited ({bad.returncode}) instead of staying up "
                f"not ready:\n" + "\n".join(bad.log_text().splitlines()[-6:])
            )
            status, body = readyz(bad.url)
            assert status == 503, (status, body)
            assert body["checks"].get("model") is False, body

            r = client(server.url)
            rids = []
            for n in range(RECORDINGS_N):
                wav = Path(clips[n % len(clips)])
                event = RecordingCompleted(
                    recording_id=f"bad-model-{n}", user_id="dana", audio_uri=wav.as_uri()
                )
                r.xadd(RECORDINGS, encode_entry(event))  # type: ignore[arg-type]
                rids.append(event.recording_id)
            wait_until(
                lambda: {e.recording_id for e in events(r, TRANSCRIPTS)} >= set(rids),
                60,
                "the healthy worker transcribing everything",
                0.2,
            )
            time.sleep(WATCH_S)

            outcomes = events(r, TRANSCRIPTS)
            assert not count_by_recording(outcomes, TranscriptionFailed), outcomes
            assert count_by_recording(outcomes, TranscriptReady) == dict.fromkeys(rids, 1)
            readers = {
                c["name"].decode(): c for c in r.xinfo_consumers(RECORDINGS, TRANSCRIBERS_GROUP)
            }
            assert not consumer_names(bad) & set(readers), (
                "the worker without a model read from the group: "
                f"{ {n: readers[n] for n in consumer_names(bad) & set(readers)} }"
            )
            assert consumer_names(running["good"]) & set(readers)
            assert bad.returncode is None and readyz(bad.url)[0] == 503
            assert not log_lines(bad, '"transcribed"')

    print(
        f"\n[bad-model {kind}] broken worker up and 503 for {WATCH_S:.0f}+ s, never read the "
        f"group; the healthy one did all {RECORDINGS_N}; total {time.monotonic() - started:.0f} s"
    )
