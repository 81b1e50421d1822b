"""Token accounting: counted per agent while a run goes, then summed, priced and stored.

Counting happens in SDK hooks, per model response, because the run result only knows the
total: a run with handoffs spends tokens on several agents (and providers, and prices), and
each must be attributed to the agent that spent them.
"""

from __future__ import annotations

from collections.abc import Iterable

from agents import Agent, ModelResponse, RunContextWrapper, RunHooks

from whisp_agent.runs import AgentUsage, RunRequest
from whisp_agent.settings import Price
from whisp_agent.store import UsageRow
from whisp_agent.tools import ToolDeps
from whisp_shared.events import TokenUsage


def add_usage(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        requests=a.requests + b.requests,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        total_tokens=a.total_tokens + b.total_tokens,
    )


def total_usage(usages: Iterable[TokenUsage]) -> TokenUsage:
    total = TokenUsage()
    for usage in usages:
        total = add_usage(total, usage)
    return total


class UsageHooks(RunHooks[ToolDeps]):
    """Tokens per agent, from each model response as it arrives; handoffs as they happen."""

    def __init__(self) -> None:
        self.by_agent: dict[str, TokenUsage] = {}
        self.handoffs: list[str] = []
        self._deltas: dict[str, int] = {}

    def count_delta(self, agent_id: str) -> None:
        """One streamed text chunk of `agent_id` (see `fill_missing_output_tokens`)."""
        self._deltas[agent_id] = self._deltas.get(agent_id, 0) + 1

    def fill_missing_output_tokens(self) -> None:
        """For servers that send no usage in streams (llama.cpp's own server ignores
        `stream_options`; the bundled one adds the usage chunk, see `local_llm`): count their
        text chunks instead (about one token each), so output tokens are not zero."""
        for agent_id, chunks in self._deltas.items():
            got = self.by_agent.get(agent_id, TokenUsage())
            if got.output_tokens == 0 and chunks:
                self.by_agent[agent_id] = got.model_copy(
                    update={"output_tokens": chunks, "total_tokens": got.input_tokens + chunks}
                )

    async def on_llm_end(
        self, context: RunContextWrapper[ToolDeps], agent: Agent[ToolDeps], response: ModelResponse
    ) -> None:
        u = response.usage
        got = TokenUsage(
            requests=max(u.requests, 1),
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            total_tokens=u.total_tokens or u.input_tokens + u.output_tokens,
        )
        self.by_agent[agent.name] = add_usage(self.by_agent.get(agent.name, TokenUsage()), got)

    async def on_handoff(
        self,
        context: RunContextWrapper[ToolDeps],
        from_agent: Agent[ToolDeps],
        to_agent: Agent[ToolDeps],
    ) -> None:
        self.handoffs.append(f"{from_agent.name}->{to_agent.name}")


def cost_usd(usage: TokenUsage, price: Price | None) -> float | None:
    """The estimated spend; None for a model without a configured price."""
    if price is None:
        return None
    return (
        usage.input_tokens * price.input_per_mtok + usage.output_tokens * price.output_per_mtok
    ) / 1e6


def total_cost(costs: Iterable[float | None]) -> float | None:
    """The sum of the known costs; None when no agent of the run had a price."""
    known = [cost for cost in costs if cost is not None]
    return sum(known) if known else None


def usage_rows(request: RunRequest, run_id: str, spent: Iterable[AgentUsage]) -> list[UsageRow]:
    """What the usage table keeps of a run: one row per agent that spent tokens."""
    return [
        UsageRow(
            user_id=request.user_id, session_id=request.session_id, run_id=run_id,
            target=request.target, agent_id=a.agent_id, provider=a.provider, model=a.model,
            requests=a.usage.requests, input_tokens=a.usage.input_tokens,
            output_tokens=a.usage.output_tokens, cost_usd=a.cost_usd,
        )
        for a in spent
    ]  # fmt: skip
