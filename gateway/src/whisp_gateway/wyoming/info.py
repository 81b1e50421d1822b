"""The answer to `describe`: one `asr` program, as Home Assistant lists it when adding us."""

from __future__ import annotations

from importlib.metadata import version

from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from whisp_gateway.wyoming.settings import WyomingSettings

PROGRAM = "whisptt"
WHISPER = Attribution(name="OpenAI", url="https://github.com/openai/whisper")


def describe(settings: WyomingSettings) -> Info:
    """What this server transcribes with: the model the workers run (`web.wyoming.model`),
    its languages, and whether transcripts stream."""
    ours = version("whisp-gateway")
    model = AsrModel(
        name=settings.model,
        attribution=WHISPER,
        installed=True,
        description=f"Whisper {settings.model} on WhisPTT's transcription workers",
        version=None,
        languages=list(settings.languages),
    )
    program = AsrProgram(
        name=PROGRAM,
        attribution=Attribution(name="WhisPTT", url=""),  # no public home page yet
        installed=True,
        description="WhisPTT: scaled Whisper workers behind a queue, with history",
        version=ours,
        models=[model],
        supports_transcript_streaming=settings.streaming,
    )
    return Info(asr=[program])
