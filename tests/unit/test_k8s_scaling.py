"""KEDA and draining, on the rendered overlays (tests/unit/k8s_render.py): every
ScaledObject valid against KEDA's CRD schema (committed in deploy/k8s/schemas, closed the way
strict field validation closes it) and what KEDA's webhook checks (min <= max, the formula's
names); triggers on the lag *and* pending entries of every stream a group reads; the formula
asking for exactly the workers that hold work in flight; termination grace covering each
pod's drain; consumer names that are pod names.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import os
import socket
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from tests.unit.k8s_render import K8S, Rendered, pod_settings, render, scaled_objects, strict
from tests.unit.test_deploy_static import APPS
from whisp_shared import service, streams
from whisp_shared.bus import default_consumer_name
from whisp_shared.config import BusSettings

KEDA_CRD = K8S / "schemas" / "keda.sh_scaledobjects.yaml"
REDIS_STREAMS_KEYS = {
    "address", "addresses", "host", "hosts", "port", "ports", "username", "password",
    "sentinelUsername", "sentinelPassword", "sentinelMaster", "unsafeSsl", "enableTLS",
    "stream", "consumerGroup", "databaseIndex", "lagCount", "pendingEntriesCount",
    "streamLength", "activationLagCount",
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


def closed(schema: Any) -> Any:
    """The CRD schema as strict field validation applies it: an object that lists its
    properties takes no others (unless it preserves unknown fields)."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: closed(v) for k, v in schema["properties"].items()}
    return out


@functools.cache
def keda_validator() -> jsonschema.protocols.Validator:
    crd = next(d for d in yaml.safe_load_all(KEDA_CRD.read_text()) if d)
    assert crd["spec"]["names"]["kind"] == "ScaledObject"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = closed(version["schema"]["openAPIV3Schema"])
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def test_scaled_objects_match_kedas_schema(rendered: Rendered) -> None:
    objects = rendered.all("ScaledObject")
    assert objects
    for so in objects:
        errors = [e.message for e in keda_validator().iter_errors(so)]
        assert not errors, f"{so['metadata']['name']}: {errors}"
        strict(so["metadata"], "V1ObjectMeta", so["metadata"]["name"])
        spec = so["spec"]
        assert spec["minReplicaCount"] <= spec["maxReplicaCount"]  # the CRD's CEL rule


def test_kedas_schema_refuses_a_misspelt_field() -> None:
    so = scaled_objects(Rendered("dev", render("dev")))["transcription"]
    bad = {**so, "spec": {**so["spec"], "maxReplicas": 3}}
    assert list(keda_validator().iter_errors(bad))


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
    namespace = so["metadata"]["namespace"]
    redis_port = {p["port"] for p in rendered.get("Service", "redis")["spec"]["ports"]}
    measured: set[tuple[str, str]] = set()
    for trigger in so["spec"]["triggers"]:
        assert trigger["type"] == "redis-streams"
        meta = trigger["metadata"]
        assert set(meta) <= REDIS_STREAMS_KEYS, set(meta) - REDIS_STREAMS_KEYS
        assert meta["consumerGroup"] == group
        # KEDA reads lag when lagCount is set and ignores pendingEntriesCount then.
        (kind,) = {"lagCount", "pendingEntriesCount"} & set(meta)
        assert int(meta[kind]) >= 1
        measured.add((meta["stream"], kind))
        host, _, port = meta["address"].rpartition(":")
        assert host == f"redis.{namespace}.svc.cluster.local", "KEDA runs in its own namespace"
        assert int(port) in redis_port
    assert measured == {(s, k) for s in reads for k in ("lagCount", "pendingEntriesCount")}
    assert Formula(so).names == {t["name"] for t in so["spec"]["triggers"]}


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


def uvicorn_drain_s(monkeypatch: pytest.MonkeyPatch) -> float:
    """How long `whisp_shared.service.serve` lets uvicorn wait for open connections."""
    seen: list[Any] = []

    class Capture:
        def __init__(self, config: Any) -> None:
            seen.append(config)

        def run(self) -> None:
            pass

    monkeypatch.setattr(service, "_Server", Capture)
    monkeypatch.setattr(service, "configure_logging", lambda *_: None)
    from whisp_audio.settings import AudioSettings

    service.serve("test", "x:y", AudioSettings.model_construct())
    return float(seen[0].timeout_graceful_shutdown)


@pytest.mark.parametrize("name", [s.name for s in APPS])
def test_termination_grace_covers_the_drain(
    rendered: Rendered, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopped pod gets its preStop pause, uvicorn's connection drain, the bus's
    graceful_timeout_s for handlers in flight and the stop itself, before SIGKILL."""
    from whisp_agent.settings import AgentSettings
    from whisp_audio.settings import AudioSettings
    from whisp_transcription.settings import TranscriptionSettings

    pod = rendered.get("Deployment", name)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pause = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    drain = uvicorn_drain_s(monkeypatch)
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
