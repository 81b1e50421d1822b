"""Fixtures for the reliability suite: short real speech, and a folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.speech import SENTENCES, Utterance, speech_corpus

SHORT_CLIPS = ("dentist", "kitchen-lights", "late-for-dinner", "shopping-list")
"""2-5 s sentences: a clip is transcribed in well under a second, so faults land mid-clip
often and 20 rounds stay short."""


@pytest.fixture(scope="session")
def short_clips(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Utterance, Path]]:
    """espeak-ng speech made in this run (16 kHz mono WAV), with its known text."""
    chosen = [u for u in SENTENCES if u.id in SHORT_CLIPS]
    return speech_corpus(tmp_path_factory.mktemp("reliability-speech"), chosen)
