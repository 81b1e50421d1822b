"""Live blocks to the socket's PCM (`whisp_cli.desk.pcm`): 100-ms pieces of 16 kHz mono
PCM16, from any rate and channel count, seamless across blocks."""

from __future__ import annotations

import numpy as np

from whisp_cli.desk.pcm import PcmChunker, pcm16
from whisp_recorder.convert import resample


def sine(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def run(chunker: PcmChunker, audio: np.ndarray, block: int) -> list[bytes]:
    out: list[bytes] = []
    for start in range(0, len(audio), block):
        out += chunker.feed(audio[start : start + block])
    return out + chunker.flush()


def test_16_khz_is_cut_into_100_ms_pieces_and_nothing_is_lost() -> None:
    audio = sine(0.55, 16_000)
    chunks = run(PcmChunker(16_000), audio.reshape(-1, 1), block=317)
    assert [len(c) for c in chunks] == [3200] * 5 + [1600]
    assert b"".join(chunks) == pcm16(audio)


def test_a_block_that_completes_no_piece_gives_none_yet() -> None:
    chunker = PcmChunker(16_000)
    assert chunker.feed(np.zeros((800, 1), np.float32)) == []
    assert [len(c) for c in chunker.feed(np.zeros((800, 1), np.float32))] == [3200]
    assert chunker.flush() == []


def test_48_khz_stereo_matches_the_recorders_own_conversion() -> None:
    """Block by block, the stream hears what the recorder keeps (one resample of it all)."""
    mono = sine(1.0, 48_000)
    stereo = np.stack([mono, mono], axis=1)
    streamed = np.frombuffer(b"".join(run(PcmChunker(48_000), stereo, block=480)), "<i2")
    whole = np.frombuffer(pcm16(resample(mono, 48_000)), "<i2")
    assert abs(len(streamed) - len(whole)) <= 32
    n = min(len(streamed), len(whole))
    assert np.abs(streamed[:n].astype(int) - whole[:n]).max() <= 2  # rounding only


def test_clipping_and_the_count_of_samples() -> None:
    chunker = PcmChunker(16_000)
    chunker.feed(np.array([[2.0], [-2.0], [0.0]], np.float32))
    (last,) = chunker.flush()
    assert np.frombuffer(last, "<i2").tolist() == [32767, -32767, 0]
    assert chunker.samples_out == 3
