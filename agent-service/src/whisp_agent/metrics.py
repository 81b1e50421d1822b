"""Prometheus series for agent runs and what they spent: per agent, per user, per session.

Cardinality decides the shape of each:
- Agent, provider and model label counters: the registry bounds them.
- User labels counters too, because users are provisioned by an admin (`whisp users add`),
  so the label set is the user list, not open-ended. A service without a service token
  trusts REST callers to name their user, though, so past `MAX_USERS` distinct users the
  rest are counted as `user="_other"` (logged once) rather than minting series forever.
- Sessions are unbounded (every chat mints one), so no counter carries a session label.
  `ActiveSessions` reads, at each scrape, the totals of the sessions that spent tokens in
  the last `SESSION_WINDOW_S` from the usage table, the `MAX_SESSIONS` most recent of them:
  gauges of a session's spend so far, which leave when it goes quiet. The count of active
  sessions is exported whole, so a cap that bites shows. Reading the store (not memory)
  keeps a session's totals right across restarts; with several replicas each exports the
  runs it served, and `sum by (user, session)` adds them up.
Older and complete figures per session and user are in the usage table (`GET /usage`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from whisp_agent.runs import AgentUsage, RunOutcome
from whisp_agent.store import SessionUsage, Store
from whisp_shared.logs import get_logger

log = get_logger(__name__)

MAX_USERS = 1000
"""Distinct `user` label values per process; more fold into `OTHER_USER`."""
OTHER_USER = "_other"
SESSION_WINDOW_S = 15 * 60.0
"""A session is exported while its last run is at most this old."""
MAX_SESSIONS = 100
"""Sessions exported at most (the most recently active ones)."""

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
USER_REQUESTS = Counter(
    "whisp_agent_user_model_requests_total", "Model calls made for a user's runs.", ["user"]
)
USER_TOKENS = Counter(
    "whisp_agent_user_tokens_total",
    "Tokens spent on a user's runs, by direction (input/output).",
    ["user", "direction"],
)
USER_COST = Counter(
    "whisp_agent_user_cost_usd_total",
    "Estimated spend in USD on a user's runs (only models with a configured price).",
    ["user"],
)


class UserLabels:
    """The `user` label of a user id: itself for the first `limit` ids seen, then OTHER."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._warned = False

    def __call__(self, user_id: str) -> str:
        if user_id in self._seen:
            return user_id
        if len(self._seen) < self.limit:
            self._seen.add(user_id)
            return user_id
        if not self._warned:
            self._warned = True
            log.warning("metrics_user_cap", max_users=self.limit, folded_into=OTHER_USER)
        return OTHER_USER


user_label = UserLabels(MAX_USERS)


def observe_run(outcome: RunOutcome) -> None:
    RUNS.labels(outcome.target, "ok").inc()
    RUN_SECONDS.labels(outcome.target).observe(outcome.seconds)


def observe_usage(spent: Sequence[AgentUsage], user_id: str) -> None:
    """What a run spent (finished or failed), per agent and for its user."""
    user = user_label(user_id)
    for item in spent:
        labels = (item.agent_id, item.provider, item.model)
        REQUESTS.labels(*labels).inc(item.usage.requests)
        TOKENS.labels(*labels, "input").inc(item.usage.input_tokens)
        TOKENS.labels(*labels, "output").inc(item.usage.output_tokens)
        USER_REQUESTS.labels(user).inc(item.usage.requests)
        USER_TOKENS.labels(user, "input").inc(item.usage.input_tokens)
        USER_TOKENS.labels(user, "output").inc(item.usage.output_tokens)
        if item.cost_usd:
            COST.labels(*labels).inc(item.cost_usd)
            USER_COST.labels(user).inc(item.cost_usd)


class ActiveSessions(Collector):
    """Per-session spend of the recently active sessions, read from the usage table."""

    def __init__(self, window_s: float = SESSION_WINDOW_S, limit: int = MAX_SESSIONS) -> None:
        self.window_s = window_s
        self.limit = limit
        self.store: Store | None = None

    def watch(self, store: Store) -> None:
        """Export the sessions of `store` (the service's one store; the last one set wins)."""
        self.store = store

    def describe(self) -> Iterable[Metric]:
        return self._families([], 0)

    def collect(self) -> Iterable[Metric]:
        if self.store is None:
            return self._families([], 0)
        sessions, active = self.store.recent_sessions(time.time() - self.window_s, self.limit)
        return self._families(sessions, active)

    def _families(self, sessions: list[SessionUsage], active: int) -> list[Metric]:
        window = f"the last {self.window_s / 60:g} minutes"
        count = GaugeMetricFamily(
            "whisp_agent_active_sessions",
            f"Sessions with a run in {window} (all of them, exported or not).",
            value=active,
        )
        labels = ["user", "session"]
        requests = GaugeMetricFamily(
            "whisp_agent_session_model_requests",
            f"Model calls of a session so far, for the {self.limit} sessions most recently "
            f"active in {window}.",
            labels=labels,
        )
        tokens = GaugeMetricFamily(
            "whisp_agent_session_tokens",
            f"Tokens spent by a session so far, by direction, for the {self.limit} sessions "
            f"most recently active in {window}.",
            labels=[*labels, "direction"],
        )
        cost = GaugeMetricFamily(
            "whisp_agent_session_cost_usd",
            f"Estimated spend in USD of a session so far (priced models only), for the "
            f"{self.limit} sessions most recently active in {window}.",
            labels=labels,
        )
        for s in sessions:
            key = [s.user_id, s.session_id]
            requests.add_metric(key, s.requests)
            tokens.add_metric([*key, "input"], s.input_tokens)
            tokens.add_metric([*key, "output"], s.output_tokens)
            if s.cost_usd is not None:
                cost.add_metric(key, s.cost_usd)
        return [count, requests, tokens, cost]


SESSIONS = ActiveSessions()
REGISTRY.register(SESSIONS)
