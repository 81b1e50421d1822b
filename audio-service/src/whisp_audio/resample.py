"""Sample-rate conversion of audio that arrives in pieces, each piece perhaps at another
replica of the audio service.

A live recording's audio comes as PCM16 chunks at the client's rate (24 kHz for OpenAI's
Realtime API) and is kept at 16 kHz. A resampler object (PyAV's swresample) would keep its
filter history in one process's memory; here the history is a small value
(`ResampleState`: samples in and out so far, and the last few input samples) that lives
with the session in Redis, so any replica can take the next chunk.

Each output sample is a windowed-sinc (Kaiser) interpolation at its exact position in the
input, computed in integers so nothing drifts over a long recording. An output is written
once every input sample its filter reaches has arrived (about 1 ms later), so the chunked
result is *identical* to converting the whole recording at once: chunk boundaries cannot
click. `flush` writes the last outputs, with silence after the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

ZERO_CROSSINGS: Final = 16
"""Sinc lobes on each side: ~ -80 dB stop band with the Kaiser window below."""
KAISER_BETA: Final = 8.6
ROLLOFF: Final = 0.94
"""The pass band ends this fraction of the way to the lower Nyquist (7.5 kHz at 16 kHz)."""
BLOCK: Final = 4096
"""Outputs computed per numpy step: bounded memory for a large chunk."""
MAX_PHASES: Final = 1024
"""Rate pairs with at most this many output phases (24, 48, 44.1, 8 kHz...) keep one row of
filter weights per phase; others (a prime rate) compute them per output."""


@dataclass(frozen=True)
class ResampleState:
    consumed: int = 0
    """Input samples received so far."""
    emitted: int = 0
    """Output samples written so far."""
    tail: bytes = b""
    """PCM16 of the last input samples (ending at `consumed`) that outputs still need."""


class Resampler:
    """PCM16 mono from `rate_in` to `rate_out`; stateless itself (the state is passed in)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError("sample rates must be positive")
        self.rate_in = rate_in
        self.rate_out = rate_out
        g = math.gcd(rate_in, rate_out)
        self._up = rate_out // g
        self._down = rate_in // g
        """Output k sits at input position k * down / up."""
        self._cutoff = min(1.0, rate_out / rate_in) * ROLLOFF
        self._reach = ZERO_CROSSINGS / self._cutoff
        """How far (in input samples) the filter reaches on each side."""
        self._half = math.ceil(self._reach) + 1
        self._offsets = np.arange(-self._half, self._half + 1, dtype=np.int64)
        self._table = (
            self._weights(np.arange(self._up, dtype=np.int64)) if self._up <= MAX_PHASES else None
        )

    @property
    def passthrough(self) -> bool:
        return self.rate_in == self.rate_out

    def output_length(self, consumed: int) -> int:
        """Outputs a recording of `consumed` input samples has in all (after `flush`)."""
        return -(-consumed * self._up // self._down)

    def feed(self, state: ResampleState, pcm: bytes) -> tuple[bytes, ResampleState]:
        """Resample one more chunk (whole PCM16 samples): the outputs it completes, and the
        state to keep for the next chunk."""
        if len(pcm) % 2:
            raise ValueError("PCM16 needs an even number of bytes")
        if self.passthrough:
            n = len(pcm) // 2
            return pcm, ResampleState(state.consumed + n, state.emitted + n)
        consumed = state.consumed + len(pcm) // 2
        ready = self._ready(consumed)
        buffer = np.frombuffer(state.tail + pcm, dtype="<i2")
        start = state.consumed - len(state.tail) // 2
        out = self._render(buffer, start, state.emitted, ready)
        return out, self._next_state(buffer, start, consumed, max(ready, state.emitted))

    def flush(self, state: ResampleState) -> bytes:
        """The outputs still owed at the end of the recording (silence after its last
        sample); the state is spent afterwards."""
        if self.passthrough:
            return b""
        buffer = np.frombuffer(state.tail, dtype="<i2")
        start = state.consumed - len(buffer)
        return self._render(buffer, start, state.emitted, self.output_length(state.consumed))

    # --- the arithmetic ----------------------------------------------------------------

    def _ready(self, consumed: int) -> int:
        """How many outputs can be written once `consumed` inputs are in: every output whose
        filter reaches no further than the last input."""
        room = consumed - self._half  # output k needs inputs up to floor(pos_k) + half
        return max(0, -(-room * self._up // self._down))

    def _render(self, buffer: npt.NDArray[np.int16], start: int, first: int, end: int) -> bytes:
        """Outputs `first`..`end` from `buffer`, whose sample 0 is input `start` (inputs
        before 0 and after the buffer are silence)."""
        if end <= first:
            return b""
        pad = self._half + 1
        padded = np.concatenate(
            [np.zeros(pad, np.float64), buffer.astype(np.float64), np.zeros(pad, np.float64)]
        )
        pieces = []
        for block in range(first, end, BLOCK):
            k = np.arange(block, min(block + BLOCK, end), dtype=np.int64)
            base = k * self._down // self._up
            phase = k * self._down % self._up
            weights = self._table[phase] if self._table is not None else self._weights(phase)
            index = base[:, None] + self._offsets[None, :] - start + pad
            pieces.append((padded[index] * weights).sum(axis=1))
        out = np.clip(np.rint(np.concatenate(pieces)), -32768, 32767).astype("<i2")
        return bytes(out.tobytes())

    def _weights(self, phase: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """One row of filter weights per output phase (its position's fraction, in 1/up),
        normalised so that a constant signal stays exactly constant."""
        t = self._offsets[None, :] - (phase / self._up)[:, None]
        weights = self._kernel(t)
        normalised: npt.NDArray[np.float64] = weights / weights.sum(axis=1, keepdims=True)
        return normalised

    def _kernel(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        inside = np.abs(t) <= self._reach
        ratio = np.clip(t / self._reach, -1.0, 1.0)
        window = np.i0(KAISER_BETA * np.sqrt(1.0 - ratio * ratio)) / np.i0(KAISER_BETA)
        kernel: npt.NDArray[np.float64] = self._cutoff * np.sinc(self._cutoff * t) * window * inside
        return kernel

    def _next_state(
        self, buffer: npt.NDArray[np.int16], start: int, consumed: int, emitted: int
    ) -> ResampleState:
        """Keep the inputs from the first one output `emitted` will need."""
        keep_from = max(0, emitted * self._down // self._up - self._half, start)
        return ResampleState(consumed, emitted, buffer[keep_from - start :].tobytes())
