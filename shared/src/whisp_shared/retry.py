"""How long an upstream asked us to wait: `Retry-After` (seconds or an HTTP date) or
`retry-after-ms`, the headers OpenAI-compatible servers send with 429 and 503.

Stdlib only, so any service can use it whichever HTTP client raised the error.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping


def retry_after_seconds(
    headers: Mapping[str, str] | None, now: float | None = None
) -> float | None:
    """Seconds to wait, never negative; None when the headers do not say.

    `retry-after-ms` wins (it is the more precise of the two when a server sends both).
    Header names are matched case-insensitively even for a plain dict.
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = lowered.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError, IndexError):
                continue
            seconds = when - (time.time() if now is None else now)
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None
