"""`whisp_shared.retry.retry_after_seconds`: the headers servers send with 429/503."""

from __future__ import annotations

import email.utils

import pytest

from whisp_shared.retry import retry_after_seconds


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_seconds_from_headers(headers: dict[str, str] | None, seconds: float | None) -> None:
    assert retry_after_seconds(headers) == seconds


def test_http_date() -> None:
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds({"Retry-After": when}, now=1_000_000) == pytest.approx(30)
