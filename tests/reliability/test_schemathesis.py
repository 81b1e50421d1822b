"""schemathesis against a real gateway, signed in: no 5xx, and every answer is documented.

`st run` (schemathesis' own CLI, as a person runs it) fuzzes every operation of the
gateway's `/openapi.json` as alice, a user of a multi-user gateway (token auth), with the
checks `not_a_server_error`, `status_code_conformance` and `response_schema_conformance`:
a generated request may be refused, but only with a status the route documents, and with
the documented body (the shared `ErrorBody`; OpenAI's shape under `/v1`).

The audio and agent services run too (the agent's model is a local stand-in speaking
OpenAI's chat protocol), rather than letting those routes answer their documented 503:
their refusals (415 for bytes that are not audio, 404 for an unknown agent, 413, 422) pass
through the gateway, and those are exactly the statuses a client meets and the OpenAPI must
name. No transcription worker: nothing generated is speech, and `?wait=true` gives up after
one second (504, documented) instead of the default minute.

Bounded and repeatable: a fixed seed, at most `WHISP_SCHEMATHESIS_EXAMPLES` cases per
operation and phase (default 12), no example database, one worker; the endless SSE stream
(`/api/events`) is read for one second per case. Only loopback is contacted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.rig import env_flag
from tests.reliability.test_auth_every_route import Stack, gateway_app, multi_user_stack

SEED = 20261201
MAX_EXAMPLES = env_flag("WHISP_SCHEMATHESIS_EXAMPLES", 12)
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
CONFIG = """\
[dictionaries]
agents = { values = ["summarizer", "assistant", "poet", "meeting"] }

[parameters]
"body.agent" = { dictionary = "agents", probability = 0.5 }

[[operations]]
include-path = "/api/events"
request-timeout = 1.0
max-stream-events = 1
"""
"""schemathesis.toml: half the agent runs name a real agent (the shipped registry), so the
fuzzed input reaches a run and its answer (or stream) is checked too, not only the 404 of an
unknown id; the live event stream never ends by itself, so one second of it is read."""


def test_every_error_is_documented_with_the_error_model() -> None:
    """The spec itself (no server): each operation lists its error statuses one by one
    (no `4XX` ranges, which any status would satisfy), each with the shared error body
    under application/json, and FastAPI's own `HTTPValidationError` appears nowhere (our
    422 is an `ErrorBody`)."""
    spec = gateway_app().openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    ops = [(p, m, op) for p, item in spec["paths"].items() for m, op in item.items()]
    assert len(ops) >= 19
    for path, method, op in ops:
        if path in ("/healthz", "/readyz"):
            continue  # the shared ops routes: 200, or 503 with the health body
        statuses = op["responses"]
        assert not {"4XX", "5XX", "default"} & set(statuses), (method, path)
        errors = [s for s in statuses if int(s) >= 400]
        assert "500" in errors, (method, path)
        model = "OpenAIErrorBody" if path.startswith("/v1/") else "ErrorBody"
        for status in errors:
            content = statuses[status]["content"]
            assert set(content) == {"application/json"}, (method, path, status)
            assert content["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{model}"
            }, (method, path, status)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with multi_user_stack(
        tmp_path_factory.mktemp("schemathesis-stack"),
        users=("alice",),
        gateway_env={"WHISP_WEB__WAIT_TIMEOUT_S": "1"},
    ) as running:
        yield running


def loopback_only() -> dict[str, str]:
    """This environment without proxies (every request stays on 127.0.0.1)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_schemathesis_finds_no_server_error_and_nothing_undocumented(
    stack: Stack, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", f"{stack.gateway}/openapi.json",
        "--header", f"Authorization: Bearer {stack.tokens['alice']}",
        "--checks", CHECKS,
        "--seed", str(SEED),
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-database", "none",
        "--workers", "1",
        "--request-timeout", "15",
        "--report", "junit", "--report-dir", str(tmp_path / "report"),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env=loopback_only(),
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    took = time.monotonic() - started
    out = done.stdout + done.stderr
    summary = out[out.rfind("SUMMARY") :] if "SUMMARY" in out else out[-3000:]
    assert done.returncode == 0, f"schemathesis failed after {took:.0f}s:\n{out[-15000:]}"
    tested = re.search(r"Tested:\s+(\d+)", out)
    generated = re.search(r"(\d+) generated", out)
    assert tested and int(tested.group(1)) >= 19, summary
    assert generated and int(generated.group(1)) > 19 * 5, summary
    print(f"schemathesis: {generated.group(0)} in {took:.0f}s, {tested.group(0)} operations")
    for log in stack.log_dir.glob("*.log"):  # and the token never reached a log
        assert stack.tokens["alice"] not in log.read_text(errors="replace"), log.name
