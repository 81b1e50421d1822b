"""`GET /agents`: the catalog of agents and pipelines, with whether each can run right now."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from whisp_agent.api.deps import RuntimeDep
from whisp_shared.http_errors import ERROR_RESPONSES

agents_router = APIRouter(tags=["agents"], responses=ERROR_RESPONSES)


class AgentInfo(BaseModel):
    id: str
    name: str
    description: str
    provider: str
    model: str
    verbosity: str
    tools: list[str]
    delegate_to: list[str]
    memory: bool
    available: bool
    problem: str | None = None


class PipelineInfo(BaseModel):
    id: str
    name: str
    description: str
    stages: list[str]


class Catalog(BaseModel):
    agents: list[AgentInfo]
    pipelines: list[PipelineInfo]


@agents_router.get("/agents")
async def list_agents(runtime: RuntimeDep) -> Catalog:
    registry, factory = runtime.registry, runtime.factory
    agents = []
    for spec in registry.agents.values():
        where = factory.resolve(spec)
        problem = runtime.unavailable(spec.id)
        agents.append(
            AgentInfo(
                id=spec.id, name=spec.display_name, description=spec.description,
                provider=where.provider, model=where.model, verbosity=spec.verbosity,
                tools=spec.tools, delegate_to=spec.delegate_to, memory=spec.memory,
                available=problem is None, problem=problem,
            )
        )  # fmt: skip
    pipelines = [
        PipelineInfo(
            id=p.id,
            name=p.name or p.id,
            description=p.description,
            stages=[s.name or s.agent for s in p.stages],
        )
        for p in registry.pipelines.values()
    ]
    return Catalog(agents=agents, pipelines=pipelines)
