"""What installing the CLI pulls in: the recorder core and the shared models, never a
service or a server framework (the desk clients talk to the gateway over HTTP only).

Read from the installed packages' metadata, so it checks the declared dependencies
(`cli/pyproject.toml` and everything it names), not just what one import happens to load.
"""

from __future__ import annotations

from importlib.metadata import requires

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SERVER_SIDE = {
    "fastapi",
    "starlette",
    "uvicorn",
    "faststream",
    "python-multipart",
    "whisp-audio-service",
    "whisp-transcription-service",
    "whisp-agent-service",
    "whisp-gateway",
}


def closure(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Every distribution installing `name[extras]` brings, `name` included."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(name), extras)]
    while todo:
        dist, wanted = todo.pop()
        if (dist, wanted) in seen:
            continue
        seen.add((dist, wanted))
        for line in requires(dist) or []:
            req = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in environments):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {dist for dist, _ in seen}


def test_the_cli_installs_no_service_and_no_server_framework() -> None:
    installed = closure("whisp-cli", frozenset({"tray"}))
    assert {"whisp-recorder", "whisp-shared", "sounddevice", "av"} <= installed
    assert installed.isdisjoint(SERVER_SIDE), sorted(installed & SERVER_SIDE)


def test_the_recorder_core_needs_no_service_either() -> None:
    assert closure("whisp-recorder").isdisjoint(SERVER_SIDE)
    # The walk does see a server's stack where there is one (the check is not vacuous).
    assert {"fastapi", "uvicorn", "whisp-recorder"} <= closure("whisp-audio-service")
