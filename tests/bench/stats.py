"""Summary statistics every benchmark reports the same way."""

from __future__ import annotations

import statistics


def latency_stats(samples_s: list[float], digits: int = 4) -> dict[str, float]:
    """n, median, p90, p99, mean, min and max of latencies given in seconds, in ms."""
    ms = sorted(s * 1000 for s in samples_s)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), digits),
        "p90_ms": round(cuts[89], digits),
        "p99_ms": round(cuts[98], digits),
        "mean_ms": round(statistics.fmean(ms), digits),
        "min_ms": round(ms[0], digits),
        "max_ms": round(ms[-1], digits),
    }
