"""Load the agent registry from YAML and validate it as a whole, reporting every problem.

A registry is any mix of files, each one of:
- one agent (`id`, `instructions`, …; optional `kind: agent`),
- one pipeline (`kind: pipeline` or a `stages` list),
- a registry file with `agents:` and/or `pipelines:` lists.

Validation collects problems instead of stopping at the first: a person fixing a registry
wants the whole list, with file and field. This module is import-light (yaml, pydantic,
no SDK), so `whisp agents validate` can run it in the CLI's process.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from whisp_agent import guardrails
from whisp_agent.handoff_graph import one_cycle_per_loop, reaches
from whisp_agent.settings import AgentSettings
from whisp_agent.spec import AgentSpec, PipelineSpec

YAML_SUFFIXES = (".yaml", ".yml")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.field}: {self.message}"
            if self.field
            else (f"{self.file}: {self.message}")
        )


class RegistryError(Exception):
    """The registry cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"agent registry is invalid ({len(problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class Registry:
    agents: dict[str, AgentSpec]
    pipelines: dict[str, PipelineSpec]
    files: dict[str, str] = field(default_factory=dict)
    """id → the file it came from."""

    def provider_of(self, agent: AgentSpec, settings: AgentSettings) -> str:
        return agent.provider or settings.default_provider


@dataclass
class _Doc:
    """One agent or pipeline mapping, with where it came from."""

    kind: str
    data: dict[str, Any]
    file: str
    prefix: str

    def at(self, *loc: str | int) -> str:
        parts = [self.prefix] if self.prefix else []
        for item in loc:
            if isinstance(item, int):
                parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]"]
            else:
                parts.append(item)
        return ".".join(parts)


def load_registry(
    paths: Iterable[Path], settings: AgentSettings, tool_names: Iterable[str]
) -> Registry:
    """Every agent and pipeline under `paths`, or RegistryError listing every problem."""
    problems: list[Problem] = []
    docs = list(_read_docs(paths, problems))
    validator = _Validator(settings, set(tool_names), problems)
    registry = validator.run(docs)
    if problems:
        raise RegistryError(sorted(set(problems), key=lambda p: (p.file, p.field, p.message)))
    return registry


def registry_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES)
        else:
            yield path


def _read_docs(paths: Iterable[Path], problems: list[Problem]) -> Iterator[_Doc]:
    paths = list(paths)
    found_any = False
    for path in paths:
        if not path.exists():
            problems.append(Problem(str(path), "", "no such file or folder"))
    for file in registry_files(p for p in paths if p.exists()):
        found_any = True
        name = str(file)
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else ""
            problems.append(Problem(name, where, f"not valid YAML: {_yaml_reason(exc)}"))
            continue
        except OSError as exc:
            problems.append(Problem(name, "", f"cannot read: {exc.strerror}"))
            continue
        except UnicodeDecodeError as exc:
            problems.append(Problem(name, "", f"not UTF-8 text (byte {exc.start})"))
            continue
        except RecursionError:
            problems.append(Problem(name, "", "nested too deeply to be an agent file"))
            continue
        yield from _split(data, name, problems)
    if not found_any and all(p.exists() for p in paths):
        where = ", ".join(str(p) for p in paths) or "(no path)"
        problems.append(Problem(where, "", "no agent files (*.yaml, *.yml) found"))


def _yaml_reason(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else str(exc).splitlines()[0]


def _split(data: Any, file: str, problems: list[Problem]) -> Iterator[_Doc]:
    if data is None:
        problems.append(Problem(file, "", "the file is empty"))
        return
    if not isinstance(data, dict):
        problems.append(
            Problem(
                file,
                "",
                "the top level must be a mapping (one agent, or `agents:`/`pipelines:` lists)",
            )
        )
        return
    if set(data) & {"agents", "pipelines"} and not set(data) & {"id", "kind"}:
        for key in sorted(set(data) - {"agents", "pipelines"}):
            problems.append(
                Problem(file, key, "unknown key in a registry file (expected agents, pipelines)")
            )
        for kind, key in (("agent", "agents"), ("pipeline", "pipelines")):
            items = data.get(key) or []
            if not isinstance(items, list):
                problems.append(Problem(file, key, "must be a list"))
                continue
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    yield _Doc(kind, dict(item), file, f"{key}[{i}]")
                else:
                    problems.append(Problem(file, f"{key}[{i}]", "must be a mapping"))
        return
    data = dict(data)
    kind = data.pop("kind", None) or ("pipeline" if "stages" in data else "agent")
    if kind not in ("agent", "pipeline"):
        problems.append(Problem(file, "kind", f"unknown kind {kind!r} (agent or pipeline)"))
        return
    yield _Doc(kind, data, file, "")


class _Validator:
    def __init__(self, settings: AgentSettings, tools: set[str], problems: list[Problem]):
        self.settings = settings
        self.providers = settings.all_providers()
        self.tools = tools
        self.problems = problems

    def add(self, doc: _Doc, loc: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(doc.file, doc.at(*loc), message))

    def run(self, docs: list[_Doc]) -> Registry:
        agents: dict[str, tuple[AgentSpec, _Doc]] = {}
        pipelines: dict[str, tuple[PipelineSpec, _Doc]] = {}
        seen: dict[str, str] = {}
        # Ids first, even of documents that fail validation, so a reference to a broken
        # agent is not also reported as a reference to a missing one.
        for doc in docs:
            doc_id = doc.data.get("id")
            if not isinstance(doc_id, str):
                continue
            if doc_id in seen:
                self.add(doc, ("id",), f"id {doc_id!r} is already used in {seen[doc_id]}")
            else:
                seen[doc_id] = doc.file
        agent_ids = {
            d.data["id"] for d in docs if d.kind == "agent" and isinstance(d.data.get("id"), str)
        }
        for doc in docs:
            if doc.kind == "agent":
                self._agent_refs(doc, agent_ids)
                agent = self._parse(AgentSpec, doc)
                if agent is not None:
                    self._agent(agent, doc)
                    agents.setdefault(agent.id, (agent, doc))
            else:
                pipeline = self._parse(PipelineSpec, doc)
                if pipeline is not None:
                    self._pipeline(pipeline, doc, agent_ids)
                    pipelines.setdefault(pipeline.id, (pipeline, doc))
        self._cycles(agents, pipelines)
        return Registry(
            agents={k: v[0] for k, v in agents.items()},
            pipelines={k: v[0] for k, v in pipelines.items()},
            files={
                **{k: v[1].file for k, v in agents.items()},
                **{k: v[1].file for k, v in pipelines.items()},
            },
        )

    def _parse(self, model: type[M], doc: _Doc) -> M | None:
        try:
            return model.model_validate(doc.data)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                refs = doc.kind == "agent" and loc and loc[0] in ("tools", "delegate_to")
                if refs and err["type"] != "list_type":
                    continue  # reported by _agent_refs with a better message
                msg = {"extra_forbidden": "unknown field", "missing": "required"}.get(
                    err["type"], err["msg"]
                )
                if err["type"] == "string_pattern_mismatch" and loc == ("id",):
                    msg = "must be lowercase letters, digits, '-' or '_' (at most 64)"
                self.add(doc, loc, msg)
            return None

    def _agent_refs(self, doc: _Doc, agent_ids: set[str]) -> None:
        """Tool names and handoff targets, checked on the raw document so that they are
        reported even when another field of the same agent is broken."""
        for key, known, what in (
            ("tools", self.tools, "tool"),
            ("delegate_to", agent_ids, "handoff target"),
        ):
            values = doc.data.get(key)
            if not isinstance(values, list):
                continue
            for i, value in enumerate(values):
                if not isinstance(value, str):
                    self.add(doc, (key, i), f"must be a {what} name")
                elif value not in known:
                    self.add(doc, (key, i), _unknown(what, value, known))

    def _agent(self, agent: AgentSpec, doc: _Doc) -> None:
        if not (agent.instructions or "").strip():
            self.add(doc, ("instructions",), "missing instructions (the agent's system prompt)")
        if agent.verbosity not in self.settings.verbosity:
            choices = ", ".join(self.settings.verbosity)
            self.add(doc, ("verbosity",), f"{agent.verbosity!r} is not one of {choices}")
        provider_name = agent.provider or self.settings.default_provider
        provider = self.providers.get(provider_name)
        if provider is None:
            self.add(doc, ("provider",), _unknown("provider", provider_name, self.providers))
        elif not provider.supports_tools and (agent.tools or agent.delegate_to):
            needs = [
                k for k, v in (("tools", agent.tools), ("delegate_to", agent.delegate_to)) if v
            ]
            which = (
                f"provider {provider_name!r}"
                if agent.provider
                else (f"the default provider {provider_name!r}")
            )
            self.add(
                doc,
                ("provider",) if agent.provider else (needs[0],),
                f"{which} cannot call tools, so an agent with {' and '.join(needs)} cannot run "
                "on it (handoffs are tool calls too); choose a provider with "
                "supports_tools: true, e.g. `provider: openai`",
            )
        for i, guard in enumerate(agent.guardrails):
            for loc, message in guardrails.spec_problems(guard):
                self.add(doc, ("guardrails", i, loc), message)

    def _pipeline(self, pipeline: PipelineSpec, doc: _Doc, agent_ids: set[str]) -> None:
        for i, stage in enumerate(pipeline.stages):
            if stage.agent not in agent_ids:
                self.add(doc, ("stages", i, "agent"), _unknown("agent", stage.agent, agent_ids))

    def _cycles(
        self,
        agents: Mapping[str, tuple[AgentSpec, _Doc]],
        pipelines: Mapping[str, tuple[PipelineSpec, _Doc]],
    ) -> None:
        """A handoff cycle can only end at max_turns: no pipeline stage could ever yield its
        output. Each cycle is reported once, with the pipelines that reach it."""
        graph = {k: [t for t in v[0].delegate_to if t in agents] for k, v in agents.items()}
        for cycle in one_cycle_per_loop(graph):
            members = set(cycle)
            users = sorted(
                pid
                for pid, (pipe, _) in pipelines.items()
                if any(reaches(graph, s.agent, members) for s in pipe.stages)
            )
            used_in = f"; pipeline(s) {', '.join(users)} reach it" if users else ""
            path = " → ".join([*cycle, cycle[0]])
            _spec, doc = agents[cycle[0]]
            self.add(doc, ("delegate_to",), f"handoff cycle {path}{used_in}")


def _unknown(what: str, value: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(value, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {value!r}{hint} (known: {', '.join(names) or 'none'})"
