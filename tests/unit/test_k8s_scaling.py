"""KEDA and draining, on the rendered overlays (tests/unit/k8s_render.py): what KEDA's
webhook checks beyond its CRD schemas (min <= max, the formula's names; the schemas
themselves are checked with every object in test_k8s_render.py); triggers on the lag *and*
pending entries of every stream a group reads, reaching the Redis the services use (dev: the
one Redis; prod: its Sentinels, with the TriggerAuthentication's passwords); the formula
asking for exactly the workers that hold work in flight; termination grace covering each
pod's drain, from the services' own shutdown setting; consumer names that are pod names.
"""

from __future__ import annotations

import ast
import math
import operator
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.unit.k8s_render import (
    Rendered,
    app_settings_class,
    crd_errors,
    pod_settings,
    redis_topology,
    render,
    scaled_objects,
)
from tests.unit.test_deploy_static import APPS, BY_NAME
from whisp_shared import service, streams
from whisp_shared.bus import default_consumer_name
from whisp_shared.config import BusSettings

# Every metadata key KEDA 2.20.2's redis-streams scalers read (pkg/scalers/redis_streams_scaler.go
# and the connection fields of redis_scaler.go, tag `keda:"name=..."`): a misspelt key is
# silently ignored by KEDA, so it is refused here.
REDIS_STREAMS_KEYS = {
    "address", "addresses", "host", "hosts", "port", "ports", "username", "password",
    "sentinelUsername", "sentinelPassword", "sentinelMaster", "unsafeSsl", "enableTLS",
    "stream", "consumerGroup", "databaseIndex", "lagCount", "pendingEntriesCount",
    "streamLength", "activationLagCount",
}  # fmt: skip
# What a TriggerAuthentication may give those scalers (`order=...authParams` in the same tags).
REDIS_AUTH_PARAMS = {
    "address", "addresses", "host", "hosts", "port", "ports", "username", "password",
    "sentinelUsername", "sentinelPassword", "sentinelMaster", "tls", "cert", "key",
    "keyPassword", "ca",
}  # fmt: skip
# What each consumer group reads (whisp_shared.streams; the consumers in the services).
GROUP_READS = {
    "transcription": (
        streams.TRANSCRIBERS_GROUP,
        {streams.RECORDINGS, streams.PRIORITY_RECORDINGS, streams.LIVE_RECORDINGS},
    ),
    "agents": (streams.AGENTS_GROUP, {streams.TRANSCRIPTS}),
}
# Measured: tiny.en int8 on one thread transcribes a 120-s clip in ~2.7 s
# (/work/shared/LIBRARIES.md); a drain must cover the longest clip on a node 4x slower.
MEASURED_RTF = 2.7 / 120
RTF_MARGIN = 4
STOP_OVERHEAD_S = 10  # the bus's last read, writing finishes, the hand-back (bus_group.stop)


# --- KEDA ------------------------------------------------------------------------------


def test_scaled_objects_pass_what_kedas_webhook_checks(rendered: Rendered) -> None:
    """Each ScaledObject's schema is checked with every object (test_k8s_render.py); its
    webhook also wants min <= max (the CRD's CEL rule) and a formula over its triggers."""
    objects = rendered.all("ScaledObject")
    assert objects
    for so in objects:
        assert so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
        assert Formula(so).names == {t["name"] for t in so["spec"]["triggers"]}


def test_kedas_schemas_refuse_a_misspelt_field() -> None:
    so = scaled_objects(Rendered("dev", render("dev")))["transcription"]
    assert not crd_errors(so)
    assert crd_errors({**so, "spec": {**so["spec"], "maxReplicas": 3}})
    auth = Rendered("prod", render("prod")).get("TriggerAuthentication", "redis")
    assert not crd_errors(auth)
    (ref, *_) = auth["spec"]["secretTargetRef"]
    misspelt = {**auth, "spec": {"secretTargetRef": [{**ref, "paramter": "password"}]}}
    assert crd_errors(misspelt)


class Formula:
    """A scalingModifiers formula: the arithmetic KEDA's expr language shares with Python,
    checked as KEDA's webhook does (every name a trigger) and evaluated."""

    ALLOWED = (ast.Expression, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Name,
               ast.Load, ast.Constant)  # fmt: skip

    def __init__(self, so: dict[str, Any]) -> None:
        modifiers = so["spec"]["advanced"]["scalingModifiers"]
        self.tree = ast.parse(modifiers["formula"], mode="eval")
        for node in ast.walk(self.tree):
            assert isinstance(node, self.ALLOWED), ast.dump(node)
        self.names = {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name)}
        self.target = float(modifiers["target"])
        assert self.target > 0
        assert modifiers["metricType"] == "AverageValue"  # replicas = ceil(value / target)
        self.low, self.high = so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]

    def replicas(self, **values: float) -> int:
        """What the HPA asks for when the triggers read `values` (missing ones read 0)."""
        env = {name: values.get(name, 0.0) for name in self.names}
        value = self._evaluate(self.tree.body, env)
        return int(min(self.high, max(self.low, math.ceil(value / self.target))))

    OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                 ast.Div: operator.truediv}  # fmt: skip

    def _evaluate(self, node: ast.expr, env: dict[str, float]) -> float:
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int | float), node.value
            return float(node.value)
        assert isinstance(node, ast.BinOp)
        left, right = self._evaluate(node.left, env), self._evaluate(node.right, env)
        return float(self.OPERATORS[type(node.op)](left, right))


@pytest.mark.parametrize("target", sorted(GROUP_READS))
def test_keda_watches_lag_and_pending_of_every_stream_the_group_reads(
    rendered: Rendered, target: str
) -> None:
    so = scaled_objects(rendered)[target]
    deployment = rendered.get("Deployment", target)
    assert so["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    group, reads = GROUP_READS[target]
    measured: set[tuple[str, str]] = set()
    for trigger in so["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert set(meta) <= REDIS_STREAMS_KEYS, set(meta) - REDIS_STREAMS_KEYS
        assert meta["consumerGroup"] == group
        # KEDA reads lag when lagCount is set and ignores pendingEntriesCount then.
        (kind,) = {"lagCount", "pendingEntriesCount"} & set(meta)
        assert int(meta[kind]) >= 1
        measured.add((meta["stream"], kind))
    assert measured == {(s, k) for s in reads for k in ("lagCount", "pendingEntriesCount")}


@pytest.mark.parametrize("target", sorted(GROUP_READS))
def test_keda_reaches_the_redis_the_services_use(rendered: Rendered, target: str) -> None:
    """dev: the one Redis, by its Service's full name (KEDA runs in its own namespace). prod:
    through the Sentinels the services' REDIS_URL names, with the Redis pods' passwords."""
    so = scaled_objects(rendered)[target]
    namespace = so["metadata"]["namespace"]
    topology = redis_topology(rendered)
    for trigger in so["spec"]["triggers"]:
        meta = trigger["metadata"]
        addresses = meta["addresses"].split(",")
        if topology is None:
            assert trigger["type"] == "redis-streams"
            redis_ports = {p["port"] for p in rendered.get("Service", "redis")["spec"]["ports"]}
            (address,) = addresses
            host, _, port = address.rpartition(":")
            assert host == f"redis.{namespace}.svc.cluster.local"
            assert int(port) in redis_ports
            assert "authenticationRef" not in trigger and "sentinelMaster" not in meta
            continue
        assert trigger["type"] == "redis-sentinel-streams"
        assert addresses == topology.sentinels
        assert meta["sentinelMaster"] == topology.master_name
        auth = rendered.get("TriggerAuthentication", trigger["authenticationRef"]["name"])
        given = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
        assert set(given) <= REDIS_AUTH_PARAMS, set(given) - REDIS_AUTH_PARAMS
        for parameter, variable in (("password", "REDIS_PASSWORD"),
                                    ("sentinelPassword", "REDIS_SENTINEL_PASSWORD")):  # fmt: skip
            assert given[parameter]["name"] == topology.password_refs[variable]["name"]
            assert given[parameter]["key"] == topology.password_refs[variable]["key"]


def test_scaling_counts_work_in_flight_and_never_more(
    rendered: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KEDA asks for exactly the workers that hold work in flight (so scale-in only removes
    idle ones, where lag alone would read 0), and for more when work waits."""
    from whisp_transcription.settings import TranscriptionSettings

    workers = Formula(scaled_objects(rendered)["transcription"])
    t = pod_settings(rendered, "transcription", TranscriptionSettings, tmp_path, monkeypatch)
    for busy in range(1, workers.high + 1):
        assert workers.replicas(uploads_in_flight=busy * t.max_concurrency) == busy
        assert workers.replicas(live_in_flight=busy * t.max_live_sessions) == busy
        assert workers.replicas(clips_in_flight=busy * (t.slots + 1)) == busy
    assert workers.replicas() == workers.low == 1
    assert workers.replicas(clips_waiting=3) == min(1, workers.high)
    assert workers.replicas(uploads_waiting=50) == min(10, workers.high)
    assert workers.replicas(live_waiting=6) == min(2, workers.high)
    assert workers.replicas(uploads_in_flight=2, uploads_waiting=10) == min(4, workers.high)


def test_agent_scaling_counts_runs_in_flight(
    rendered: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whisp_agent.settings import AgentSettings

    agents = Formula(scaled_objects(rendered)["agents"])
    settings = pod_settings(rendered, "agents", AgentSettings, tmp_path, monkeypatch)
    for busy in range(1, agents.high + 1):
        assert agents.replicas(runs_in_flight=busy * settings.max_concurrency) == busy
    assert agents.replicas(runs_waiting=settings.max_concurrency * 2) == min(2, agents.high)
    # Several replicas serve one user's session: its turns must be in Redis.
    assert agents.high == 1 or settings.sessions == "redis"


# --- draining ---------------------------------------------------------------------------


def test_serve_gives_uvicorn_the_shutdown_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """`whisp_shared.service.serve` drains open requests for `shutdown_timeout_s`, the
    number the grace periods below are checked against, not a figure of its own."""
    seen: list[Any] = []

    class Capture:
        def __init__(self, config: Any) -> None:
            seen.append(config)

        def run(self) -> None:
            pass

    monkeypatch.setattr(service, "_Server", Capture)
    monkeypatch.setattr(service, "configure_logging", lambda *_: None)
    from whisp_audio.settings import AudioSettings

    service.serve("test", "x:y", AudioSettings.model_construct(shutdown_timeout_s=7))
    assert seen[0].timeout_graceful_shutdown == 7


@pytest.mark.parametrize("name", [s.name for s in APPS])
def test_termination_grace_covers_the_drain(
    rendered: Rendered, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopped pod gets its preStop pause, uvicorn's connection drain (the service's
    `shutdown_timeout_s`), the bus's graceful_timeout_s for handlers in flight (which covers
    the longest clip) and the stop itself, before SIGKILL."""
    from whisp_agent.settings import AgentSettings
    from whisp_audio.settings import AudioSettings
    from whisp_transcription.settings import TranscriptionSettings

    pod = rendered.get("Deployment", name)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pause = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    app = pod_settings(rendered, name, app_settings_class(BY_NAME[name]), tmp_path, monkeypatch)
    drain = app.shutdown_timeout_s
    graceful = pod_settings(rendered, name, BusSettings, tmp_path, monkeypatch).graceful_timeout_s
    assert pod["terminationGracePeriodSeconds"] >= pause + drain + graceful + STOP_OVERHEAD_S
    if name == "transcription":  # the longest clip finishes, even on a slower node
        audio = pod_settings(rendered, "audio", AudioSettings, tmp_path, monkeypatch)
        worker = pod_settings(rendered, name, TranscriptionSettings, tmp_path, monkeypatch)
        longest = min(audio.max_duration_s, worker.max_audio_s)
        assert graceful >= longest * MEASURED_RTF * RTF_MARGIN
    if name == "agents":  # one model call may take the provider's whole timeout
        agents = pod_settings(rendered, name, AgentSettings, tmp_path, monkeypatch)
        assert graceful >= agents.all_providers()[agents.default_provider].timeout_s


def test_consumer_names_are_pod_names(rendered: Rendered) -> None:
    """Consumers name themselves `<hostname>-<pid>`; a pod's hostname is its own name unless
    it sets one or shares the node's network, which none does."""
    assert default_consumer_name() == f"{socket.gethostname()}-{os.getpid()}"
    for workload in rendered.workloads():
        pod = workload["spec"]["template"]["spec"]
        for key in ("hostname", "subdomain", "hostNetwork", "setHostnameAsFQDN"):
            assert not pod.get(key), f"{workload['metadata']['name']} sets {key}"
