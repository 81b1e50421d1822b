"""`whisp agent …` and `whisp agents …`: agents through the gateway (the one door), with the
user's API token, so they work against a running `make run` with no flags.

The CLI never imports the agent service (its SDK and model servers stay out of the CLI),
with one exception: `whisp agents validate` imports the registry loader lazily, which is
import-light by design (yaml + pydantic), so validation works without a running service.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from whisp_cli.desk.gateway import GatewayError
from whisp_cli.desk.rest import fail, raise_for, rest_client, text_or_stdin
from whisp_shared.codes import ErrorCode

agent_app = typer.Typer(help="Run an agent or pipeline on text.", no_args_is_help=True)
agents_app = typer.Typer(help="The agent registry: list, validate.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="The gateway (default: cli.gateway_url, as `whisp up` serves it)."),
]


def register(app: typer.Typer) -> None:
    """Mount both sub-apps on the main `whisp` app."""
    app.add_typer(agent_app, name="agent")
    app.add_typer(agents_app, name="agents")


def _sse(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from a text/event-stream response."""
    event, data = "message", ""
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, json.loads(data)
            event, data = "message", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def _stream(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Print the answer as it arrives; return the final outcome."""
    speaker: str | None = None
    with client.stream("POST", path, json=body) as response:
        raise_for(response)
        for event, data in _sse(response):
            if event == "delta":
                if data.get("agent_id") != speaker:
                    speaker = data.get("agent_id")
                    console.print(f"[bold cyan]{speaker}[/]: ", end="")
                console.print(data.get("text", ""), end="", markup=False, highlight=False)
            elif event == "tool":
                console.print(f"[dim]↳ {data.get('agent_id')} uses {data.get('text')}[/]")
            elif event == "stage":
                console.print(f"\n[bold magenta]stage {data.get('stage')}[/] ({data['agent_id']})")
                speaker = None
            elif event == "error":
                wait = f" (retry after {data['retry_after']} s)" if data.get("retry_after") else ""
                raise GatewayError(
                    f"{data.get('message', '')}{wait}",
                    code=str(data.get("code", ErrorCode.AGENT_ERROR)),
                )
            elif event == "done":
                console.print()
                outcome: dict[str, Any] = data["outcome"]
                return outcome
    raise GatewayError("the stream ended without an answer", code=ErrorCode.AGENT_ERROR)


def _usage_line(outcome: dict[str, Any]) -> str:
    u = outcome.get("usage", {})
    cost = outcome.get("cost_usd")
    money = f", ~${cost:.6f}" if cost is not None else ""
    return (f"{outcome.get('agent_id')} · {u.get('input_tokens', 0)} in / "
            f"{u.get('output_tokens', 0)} out tokens, {u.get('requests', 0)} request(s), "
            f"{outcome.get('seconds', 0):.2f}s{money}")  # fmt: skip


@agent_app.command("run")
def run(
    agent_id: Annotated[str, typer.Argument(help="Agent or pipeline id.")],
    text: Annotated[
        str | None, typer.Argument(help="The input; read from stdin if omitted.")
    ] = None,
    session: Annotated[
        str | None, typer.Option(help="Remember this exchange in a session.")
    ] = None,
    stream: Annotated[bool, typer.Option(help="Print the answer as it is generated.")] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole outcome as JSON.")
    ] = False,
    url: UrlOpt = None,
) -> None:
    """Run AGENT_ID on TEXT (or on stdin: `echo text | whisp agent run ID`)."""
    text = text_or_stdin(text, errors)
    if not text.strip():
        errors.print("the input is empty")
        raise typer.Exit(2)
    body = {"agent": agent_id, "input": text, "session_id": session}
    base, http = rest_client(url)
    try:
        with http as client:
            if stream and not as_json:
                outcome = _stream(client, "/api/agents/run/stream", body)
            else:
                response = client.post("/api/agents/run", json=body)
                raise_for(response)
                outcome = response.json()
    except (GatewayError, httpx.HTTPError) as exc:
        raise fail(exc, base, errors) from exc
    if as_json:
        console.print_json(data=outcome)
        return
    if not stream:
        console.print(outcome["output"], markup=False, highlight=False)
    for stage in outcome.get("stages", []) if outcome.get("kind") == "pipeline" else []:
        errors.print(f"[dim]stage {stage['index']} {stage['name']} ({stage['agent_id']}) done[/]")
    errors.print(f"[dim]{_usage_line(outcome)}[/]")


@agent_app.command("chat")
def chat(
    agent_id: Annotated[str, typer.Argument(help="Agent id.")],
    session: Annotated[
        str | None, typer.Option(help="Continue this session (default: a new one).")
    ] = None,
    url: UrlOpt = None,
) -> None:
    """A conversation with memory. /history shows who said what, /new starts over, /exit."""
    session_id = session or uuid.uuid4().hex[:12]
    console.print(f"[bold]Chat with {agent_id}[/] (session {session_id}; /help for commands)")
    base, http = rest_client(url)
    with http as client:
        while True:
            try:
                line = console.input("[bold green]you[/]> ")
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            line = line.strip()
            if not line:
                continue
            if line in ("/exit", "/quit"):
                return
            if line == "/help":
                console.print("/history  who said what in this session\n/new      a fresh "
                              "session\n/exit     leave")  # fmt: skip
                continue
            if line == "/new":
                session_id = uuid.uuid4().hex[:12]
                console.print(f"[dim]new session {session_id}[/]")
                continue
            try:
                if line == "/history":
                    _history(client, session_id)
                    continue
                body = {"agent": agent_id, "input": line, "session_id": session_id}
                outcome = _stream(client, "/api/agents/run/stream", body)
                console.print(f"[dim]{_usage_line(outcome)}[/]")
            except (GatewayError, httpx.HTTPError) as exc:
                fail(exc, base, errors)  # report and keep the conversation going


def _history(client: httpx.Client, session_id: str) -> None:
    response = client.get(f"/api/agents/sessions/{session_id}")
    raise_for(response)
    for turn in response.json()["turns"]:
        who = turn.get("agent_id") or "you"
        stage = f" [stage {turn['stage']}]" if turn.get("stage") is not None else ""
        console.print(f"[bold]{who}{stage}[/]: ", end="")
        console.print(Markdown(turn["text"]))


@agents_app.command("list")
def list_agents(url: UrlOpt = None) -> None:
    """The agents and pipelines the gateway offers you."""
    base, http = rest_client(url)
    try:
        with http as client:
            response = client.get("/api/agents")
            raise_for(response)
    except (GatewayError, httpx.HTTPError) as exc:
        raise fail(exc, base, errors) from exc
    choices = response.json()
    table = Table(title="Agents")
    for column in ("id", "provider/model", "tools", "hands off to", "ready"):
        table.add_column(column)
    for a in (c for c in choices if c["kind"] == "agent"):
        ready = "yes" if a["available"] else f"[red]no[/]: {a['problem']}"
        table.add_row(a["id"], f"{a['provider']}/{a['model']}", ", ".join(a["tools"]),
                      ", ".join(a["delegate_to"]), ready)  # fmt: skip
    console.print(table)
    for p in (c for c in choices if c["kind"] == "pipeline"):
        console.print(f"[bold]pipeline {p['id']}[/]: {' → '.join(p['stages'])}")


@agents_app.command("validate")
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Agent files or folders (default: agents.registry in config)."),
    ] = None,
) -> None:
    """Check agent YAML without running anything; list every problem with file and field."""
    try:  # lazy and light: yaml + pydantic, no SDK (see module docstring)
        from whisp_agent.registry import RegistryError, load_registry  # noqa: PLC0415
        from whisp_agent.settings import AgentSettings  # noqa: PLC0415
        from whisp_agent.tools import builtin_tools  # noqa: PLC0415
    except ImportError as exc:
        errors.print(f"validation needs the agent service package installed: {exc}")
        raise typer.Exit(2) from exc
    settings = AgentSettings()
    targets = paths or settings.registry
    try:
        registry = load_registry(targets, settings, builtin_tools().names())
    except RegistryError as exc:
        errors.print(f"[bold red]invalid[/]: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            where = f"{problem.file}: {problem.field}" if problem.field else problem.file
            errors.print(f"  [bold]{where}[/]: {problem.message}", highlight=False)
        raise typer.Exit(1) from exc
    console.print(
        f"[bold green]valid[/]: {len(registry.agents)} agent(s), "
        f"{len(registry.pipelines)} pipeline(s) in {', '.join(map(str, targets))}"
    )
