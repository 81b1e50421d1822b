"""The rendered overlays held to the Kubernetes API and to the code (tests/unit/k8s_render.py
renders them): every core object valid as the API's types, every pod at the `restricted`
Pod Security level with probes and measured resources, the settings each pod resolves, the
Services its URLs name, the Secret it reads, disruption budgets, volumes, the Ingress.
Scaling and draining: test_k8s_scaling.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes.utils import parse_quantity

from tests.unit.k8s_render import (
    API_MODELS,
    K8S,
    Rendered,
    app_settings_class,
    pod_labels,
    pod_settings,
    scaled_objects,
    strict,
)
from tests.unit.test_deploy_static import APPS, BY_NAME, ROOT, load_yaml
from whisp_shared.config import BusSettings

SECRET_EXAMPLE = K8S / "secret.example.yaml"
RESTRICTED_VOLUMES = {
    "config_map", "empty_dir", "persistent_volume_claim", "secret", "projected",
    "downward_api", "csi", "ephemeral",
}  # fmt: skip


def test_every_object_is_a_valid_api_object(rendered: Rendered) -> None:
    kinds = {(d["apiVersion"], d["kind"]) for d in rendered.docs}
    unknown = kinds - set(API_MODELS) - {("keda.sh/v1alpha1", "ScaledObject")}
    assert not unknown, f"add these kinds to API_MODELS (and check them): {unknown}"
    for doc in rendered.docs:
        if doc["kind"] == "ScaledObject":
            continue
        name = f"{rendered.overlay}:{doc['kind']}/{doc['metadata']['name']}"
        strict(doc, API_MODELS[(doc["apiVersion"], doc["kind"])], name)


def test_strict_building_refuses_what_the_api_refuses() -> None:
    """The checker itself: an unknown field, a wrong type, a missing required field."""
    good = {"name": "x", "image": "i", "ports": [{"containerPort": 80}]}
    strict(good, "V1Container", "c")
    for bad in (
        {**good, "imagePullPolcy": "Always"},
        {**good, "ports": [{"containerPort": "80"}]},
        {"image": "i"},
    ):
        with pytest.raises((AssertionError, ValueError)):
            strict(bad, "V1Container", "c")


@pytest.mark.parametrize("name", [s.name for s in APPS])
def test_each_pod_resolves_its_settings_as_deployed(
    rendered: Rendered, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap and each Deployment's environment load in that service's settings
    (unknown keys fail), in production mode, listening where the container port says."""
    svc = BY_NAME[name]
    settings = pod_settings(rendered, name, app_settings_class(svc), tmp_path, monkeypatch)
    bus = BusSettings()
    assert settings.mode == bus.mode == "production"
    assert settings.host == "0.0.0.0"
    (container,) = rendered.get("Deployment", name)["spec"]["template"]["spec"]["containers"]
    assert settings.port in {p["containerPort"] for p in container["ports"]}
    assert urlsplit(bus.redis_url).hostname == "redis"


# --- pods -------------------------------------------------------------------------------


def containers(rendered: Rendered) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for workload in rendered.workloads():
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            yield workload["metadata"]["name"], pod, container


def test_every_pod_meets_the_restricted_pod_security_level(rendered: Rendered) -> None:
    namespace = rendered.get("Namespace", "whisptt")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, pod, container in containers(rendered):
        assert {d["metadata"]["namespace"] for d in rendered.workloads()} == {"whisptt"}
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx.get("runAsUser", 1) != 0, name
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for key in ("hostPID", "hostIPC", "hostNetwork"):
            assert not pod.get(key), name
        built = strict(pod, "V1PodSpec", name)
        for volume in built.volumes or []:
            present = {k for k, v in volume.to_dict().items() if v is not None} - {"name"}
            assert present <= RESTRICTED_VOLUMES, f"{name}: volume {present}"
        c = container["securityContext"]
        assert c["allowPrivilegeEscalation"] is False, name
        assert c["readOnlyRootFilesystem"] is True, name
        assert c["capabilities"] == {"drop": ["ALL"]}, name
        assert not c.get("privileged"), name


def quantity(value: str) -> float:
    return float(parse_quantity(value))  # type: ignore[no-untyped-call]


def test_every_container_has_probes_and_measured_resources(rendered: Rendered) -> None:
    for name, _pod, container in containers(rendered):
        ports = {p["name"] for p in container.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in container, f"{name}: no {probe}"
            http = container[probe].get("httpGet")
            if http:
                assert http["port"] in ports, f"{name}: {probe} on an unnamed port"
        if name != "redis":
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        assert {"cpu", "memory"} <= set(requests), name
        assert quantity(limits["memory"]) >= quantity(requests["memory"]), name


@pytest.mark.parametrize("name", [s.name for s in APPS])
def test_app_deployment_and_service(rendered: Rendered, name: str) -> None:
    svc = BY_NAME[name]
    deployment = rendered.get("Deployment", name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    image, _, tag = container["image"].rpartition(":")
    assert image.endswith(svc.image) and tag, "compose and Kubernetes run the same images"
    assert svc.port in {p["containerPort"] for p in container["ports"]}
    service_ = rendered.get("Service", name)
    assert service_["spec"]["selector"].items() <= pod_labels(deployment).items()
    assert svc.port in {p["port"] for p in service_["spec"]["ports"]}


def test_service_urls_in_the_environment_name_rendered_services(rendered: Rendered) -> None:
    ports = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]}
        for s in rendered.all("Service")
    }
    for name, _pod, container in containers(rendered):
        for var in container.get("env", []):
            if var["name"].endswith("_HOST") and var.get("value") not in (None, "0.0.0.0"):
                assert var["value"] in ports, f"{name}: {var['name']}={var['value']}"
            url = urlsplit(str(var.get("value", "")))
            if url.scheme in ("http", "redis") and url.hostname:
                assert url.port in ports.get(url.hostname, set()), f"{name}: {var['name']}"


def test_secrets_come_from_the_documented_secret(rendered: Rendered) -> None:
    example = next(d for d in yaml.safe_load_all(SECRET_EXAMPLE.read_text()) if d)
    documented = set(example["stringData"])
    for name, _pod, container in containers(rendered):
        for var in container.get("env", []):
            if re.search(r"(SECRET|API_KEY|TOKEN|PASSWORD|DATABASE_URL)$", var["name"]):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                assert ref, f"{name}: {var['name']} must come from a Secret"
                assert ref["name"] == example["metadata"]["name"]
                assert ref.get("optional") or ref["key"] in documented, ref["key"]
    gateway_env = rendered.get("Deployment", "gateway")["spec"]["template"]["spec"]
    (container,) = gateway_env["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert not env["WHISP_WEB__SESSION_SECRET"]["valueFrom"]["secretKeyRef"].get("optional")


def test_disruption_budgets_cover_every_workload_and_allow_drains(rendered: Rendered) -> None:
    budgets = rendered.all("PodDisruptionBudget")
    for workload in rendered.workloads():
        name, labels = workload["metadata"]["name"], pod_labels(workload)
        (budget,) = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        replicas = workload["spec"].get("replicas", 1)  # KEDA's minReplicaCount is 1
        spec = budget["spec"]
        if "minAvailable" in spec:
            assert spec["minAvailable"] < replicas, f"{name}: a drain could never evict it"
        else:
            assert spec["maxUnavailable"] >= 1, name


def test_shared_volumes_pin_one_replica(rendered: Rendered) -> None:
    """A ReadWriteOnce claim mounts on one node: its Deployment runs one pod and replaces
    it with Recreate; what scales out (KEDA, prod's gateway) mounts none."""
    claims = {
        c["metadata"]["name"]: c["spec"]["accessModes"]
        for c in rendered.all("PersistentVolumeClaim")
    }
    scaled = set(scaled_objects(rendered))
    for deployment in rendered.all("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        used = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                if "persistentVolumeClaim" in v}  # fmt: skip
        if any("ReadWriteOnce" in claims[c] for c in used):
            name = deployment["metadata"]["name"]
            assert name not in scaled and deployment["spec"]["replicas"] == 1, name
            assert deployment["spec"]["strategy"]["type"] == "Recreate", name


def test_gateway_scales_out_only_on_a_shared_database(
    rendered: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whisp_gateway.settings import GatewaySettings

    gateway = rendered.get("Deployment", "gateway")
    settings = pod_settings(rendered, "gateway", GatewaySettings, tmp_path, monkeypatch)
    if gateway["spec"]["replicas"] > 1:
        assert not settings.database_url.startswith("sqlite"), "each replica its own users"
    assert (gateway["spec"]["replicas"] > 1) == (rendered.overlay == "prod")


def ingress_size(value: str) -> int:
    """An nginx size (`64m`, `512k`, `1g`) in bytes."""
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match, value
    number, unit = match.group(1), match.group(2) or " "
    return int(number) << (10 * " kmg".index(unit))


def test_ingress_streams_sse_and_websockets_to_the_gateway(
    rendered: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whisp_audio.settings import AudioSettings
    from whisp_gateway.settings import GatewaySettings

    (ingress,) = rendered.all("Ingress")
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert notes[prefix + "proxy-buffering"] == "off", "SSE events must go out as written"
    assert notes[prefix + "proxy-request-buffering"] == "off"
    web = pod_settings(rendered, "gateway", GatewaySettings, tmp_path, monkeypatch)
    audio = pod_settings(rendered, "audio", AudioSettings, tmp_path, monkeypatch)
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):  # a held key's socket
        assert int(notes[prefix + timeout]) >= audio.max_duration_s
    assert ingress_size(notes[prefix + "proxy-body-size"]) > web.max_upload_bytes
    gateway_ports = {p["name"] for p in rendered.get("Service", "gateway")["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == "gateway"
            assert path["backend"]["service"]["port"]["name"] in gateway_ports
    if rendered.overlay == "prod":
        tls_hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
        assert {r["host"] for r in ingress["spec"]["rules"]} <= tls_hosts
        assert web.cookie_secure, "the page is served over HTTPS: secure cookies"


def test_local_llm_serves_where_the_agents_look(
    rendered: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whisp_agent.settings import AgentSettings

    llm = pod_settings(rendered, "local-llm", AgentSettings, tmp_path, monkeypatch).local_llm
    agents = pod_settings(rendered, "agents", AgentSettings, tmp_path, monkeypatch).local_llm
    (container,) = rendered.get("Deployment", "local-llm")["spec"]["template"]["spec"]["containers"]
    assert llm.host == "0.0.0.0"
    assert llm.port in {p["containerPort"] for p in container["ports"]}
    assert agents.host == "local-llm"
    assert agents.port in {p["port"] for p in rendered.get("Service", "local-llm")["spec"]["ports"]}
    compose = load_yaml(ROOT / "docker-compose.yml")["services"]["local-llm"]
    assert container["image"].rpartition(":")[0].endswith(compose["image"].partition(":")[0])
