"""Comparing what was recorded or stored with what was played: align, then correlate."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Signal = npt.NDArray[np.floating]


def best_lag(recorded: Signal, reference: Signal) -> int:
    """Samples by which `recorded` lags `reference` (FFT cross-correlation peak)."""
    n = len(recorded) + len(reference) - 1
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(reference, size))
    xcorr = np.fft.irfft(spectrum, size)
    lag = int(np.argmax(np.abs(xcorr)))
    return lag - size if lag > size // 2 else lag


def aligned(recorded: Signal, reference: Signal) -> tuple[Signal, Signal, int]:
    """The overlapping parts of both signals once `recorded` is shifted by its lag."""
    lag = best_lag(recorded, reference)
    if lag >= 0:
        rec, ref = recorded[lag:], reference
    else:
        rec, ref = recorded, reference[-lag:]
    n = min(len(rec), len(ref))
    return rec[:n], ref[:n], lag


def correlation(recorded: Signal, reference: Signal) -> tuple[float, int]:
    """Pearson correlation after alignment, and the lag in samples."""
    rec, ref, lag = aligned(recorded, reference)
    if len(rec) < 2 or not rec.std() or not ref.std():
        return 0.0, lag
    return float(np.corrcoef(rec, ref)[0, 1]), lag
