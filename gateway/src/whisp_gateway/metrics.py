"""The gateway's Prometheus metrics: requests by route and status, live SSE clients, and how
long an event takes from its service to the user's stream (store → forward)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "whisp_gateway_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "whisp_gateway_request_seconds",
    "Time to the start of the answer, by method and route template.",
    ["method", "route"],
)
SSE_CLIENTS = Gauge("whisp_gateway_sse_clients", "Open /api/events connections on this replica.")
REALTIME_SESSIONS = Gauge(
    "whisp_gateway_realtime_sessions", "Open /v1/realtime WebSockets on this replica."
)
REALTIME_ERRORS = Counter(
    "whisp_gateway_realtime_errors_total", "`error` events sent on /v1/realtime, by code.", ["code"]
)
QUOTA_REFUSALS = Counter(
    "whisp_gateway_quota_refusals_total",
    "Recordings refused because their owner's daily audio quota was used up (any path).",
)
FORWARD_LAG = Histogram(
    "whisp_gateway_forward_lag_seconds",
    "From a service publishing an event to the gateway forwarding the owner's snapshot.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class RequestMetrics:
    """ASGI middleware: counts every answer by its route *template* (`/api/transcripts/{id}`,
    never the id itself, so label sets stay bounded). Streaming answers (SSE) are counted
    when they start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = _route_template(scope)
                REQUESTS.labels(method, route, str(message["status"])).inc()
                REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, counting_send)


def _route_template(scope: Scope) -> str:
    """FastAPI puts the matched route in the scope; the web page's files have none."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    return "static" if scope.get("endpoint") is not None else "unmatched"
