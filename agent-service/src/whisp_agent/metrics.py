"""Prometheus series for agent runs.

Labels stop at agent, provider and model: per-user and per-session figures would make one
series per user (unbounded cardinality), so those live in the usage table (`GET /usage`).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from whisp_agent.runs import RunOutcome

RUNS = Counter(
    "whisp_agent_runs_total", "Agent and pipeline runs, by outcome code.", ["target", "outcome"]
)
RUN_SECONDS = Histogram(
    "whisp_agent_run_seconds",
    "Wall time of a run (all stages, tool calls and handoffs).",
    ["target"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80),
)
REQUESTS = Counter(
    "whisp_agent_model_requests_total", "Model calls made.", ["agent", "provider", "model"]
)
TOKENS = Counter(
    "whisp_agent_tokens_total",
    "Tokens spent, by direction (input/output).",
    ["agent", "provider", "model", "direction"],
)
COST = Counter(
    "whisp_agent_cost_usd_total",
    "Estimated spend in USD (only models with a configured price).",
    ["agent", "provider", "model"],
)


def observe(outcome: RunOutcome) -> None:
    RUNS.labels(outcome.target, "ok").inc()
    RUN_SECONDS.labels(outcome.target).observe(outcome.seconds)
    for item in outcome.by_agent:
        labels = (item.agent_id, item.provider, item.model)
        REQUESTS.labels(*labels).inc(item.usage.requests)
        TOKENS.labels(*labels, "input").inc(item.usage.input_tokens)
        TOKENS.labels(*labels, "output").inc(item.usage.output_tokens)
        if item.cost_usd:
            COST.labels(*labels).inc(item.cost_usd)
