"""Fixtures of the unit tests that read rendered deployment files."""

from __future__ import annotations

import pytest

from tests.unit.k8s_render import OVERLAYS, Rendered, render


@pytest.fixture(params=OVERLAYS, scope="module")
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """One overlay, rendered once per module."""
    return Rendered(request.param, render(request.param))
