"""The rendered overlays held to the Kubernetes API and to the code (tests/unit/k8s_render.py
renders them): every core object valid as the API's types and KEDA's against KEDA's CRDs,
every pod at the `restricted` Pod Security level with probes and measured resources, the
settings each pod resolves (prod: Redis through the Sentinels the Redis pods run, with their
passwords), the Services its URLs name, the Secret it reads, disruption budgets, volumes, the
Ingress. Scaling and draining: test_k8s_scaling.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from kubernetes.utils import parse_quantity

from tests.unit.k8s_render import (
    API_MODELS,
    K8S,
    KEDA_CRDS,
    Rendered,
    app_settings_class,
    container_env,
    crd_errors,
    pod_labels,
    pod_settings,
    redis_topology,
    scaled_objects,
    secret_value,
    strict,
)
from tests.unit.test_deploy_static import APPS, BY_NAME, ROOT, load_yaml
from whisp_shared.config import BusSettings
from whisp_shared.redis_client import is_sentinel, open_redis

SECRET_EXAMPLE = K8S / "secret.example.yaml"
REDIS_HA_SCRIPT = K8S / "overlays" / "prod" / "redis-ha.sh"
RESTRICTED_VOLUMES = {
    "config_map", "empty_dir", "persistent_volume_claim", "secret", "projected",
    "downward_api", "csi", "ephemeral",
}  # fmt: skip


def test_every_object_is_a_valid_api_object(rendered: Rendered) -> None:
    """Core objects as the API's models; KEDA's (ScaledObject, TriggerAuthentication)
    against KEDA's CRD schemas, their metadata as the API's."""
    kinds = {(d["apiVersion"], d["kind"]) for d in rendered.docs}
    unknown = kinds - set(API_MODELS) - set(KEDA_CRDS)
    assert not unknown, f"add these kinds to API_MODELS or KEDA_CRDS (and check them): {unknown}"
    for doc in rendered.docs:
        name = f"{rendered.overlay}:{doc['kind']}/{doc['metadata']['name']}"
        kind = (doc["apiVersion"], doc["kind"])
        if kind in KEDA_CRDS:
            assert not crd_errors(doc), f"{name}: {crd_errors(doc)}"
            strict(doc["metadata"], "V1ObjectMeta", name)
        else:
            strict(doc, API_MODELS[kind], name)


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
    topology = redis_topology(rendered)
    if topology is None:  # the one Redis of the base, by its Service
        assert bus.redis_url == "redis://redis:6379/0"
        return
    # Through the Sentinels of the Redis pods, with the passwords they were given, and a
    # publish held until a replica has it (a failover then loses nothing accepted).
    url = urlsplit(bus.redis_url)
    assert is_sentinel(bus.redis_url)
    assert url.netloc.rpartition("@")[2].split(",") == topology.sentinels
    assert url.path.strip("/").split("/") == [topology.master_name, "0"]
    assert url.password == secret_value(topology.password_refs["REDIS_PASSWORD"]["key"])
    assert parse_qs(url.query) == {
        "sentinel_password": [
            secret_value(topology.password_refs["REDIS_SENTINEL_PASSWORD"]["key"])
        ]
    }
    assert bus.replicas_to_ack >= 1
    open_redis(bus.redis_url)  # the services' own parsing takes it


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
            value = str(var.get("value", ""))
            url = urlsplit(value)
            if url.scheme in ("http", "redis") and url.hostname:
                assert url.port in ports.get(url.hostname, set()), f"{name}: {var['name']}"
            if is_sentinel(value):  # pod names of a headless Service: <pod>.<service>.<ns>…
                for address in url.netloc.rpartition("@")[2].split(","):
                    host, _, port = address.rpartition(":")
                    service = host.split(".")[1]
                    assert int(port) in ports.get(service, set()), f"{name}: {address}"


def test_redis_pods_agree_on_one_sentinel_topology(rendered: Rendered) -> None:
    """prod: every pod of the `redis` StatefulSet finds itself in the lists its Redis and its
    Sentinel are given (pod N is entry N), by a name the headless Service publishes before
    the pod is ready, on the ports the containers listen on; a majority quorum; the script
    they run is the committed one."""
    topology = redis_topology(rendered)
    statefulset = rendered.get("StatefulSet", "redis")
    if topology is None:
        assert statefulset["spec"]["replicas"] == 1, "a single Redis has no failover to share"
        return
    pod = statefulset["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"redis", "sentinel"}
    replicas = statefulset["spec"]["replicas"]
    assert replicas == len(topology.nodes) == len(topology.sentinels) >= 3
    service = rendered.get("Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"]
    namespace = statefulset["metadata"]["namespace"]
    own_port = {"redis": "REDIS_SELF", "sentinel": "SENTINEL_SELF"}
    own_password = {"redis": "REDIS_PASSWORD", "sentinel": "REDIS_SENTINEL_PASSWORD"}
    for name, container in containers.items():
        env0 = container_env(container)
        assert env0["REDISCLI_AUTH"] == env0[own_password[name]], "the probes authenticate"
        refs = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in container["env"]
                if v["name"] in topology.password_refs}  # fmt: skip
        assert refs == topology.password_refs, name
        (listens,) = [p["containerPort"] for p in container["ports"]]
        assert {p["port"] for p in service["spec"]["ports"]} >= {listens}
        for ordinal in range(replicas):
            env = container_env(container, pod_name=f"{statefulset['metadata']['name']}-{ordinal}")
            pod_host = (
                f"{env['POD_NAME']}.{service['metadata']['name']}.{namespace}.svc.cluster.local"
            )
            assert env["REDIS_SELF"] == topology.nodes[ordinal] == f"{pod_host}:{6379}"
            assert env["SENTINEL_SELF"] == topology.sentinels[ordinal]
            assert env[own_port[name]] == f"{pod_host}:{listens}"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        script = container["command"][-1]
        volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(Path(script).parent)])
        config = rendered.get("ConfigMap", volume["configMap"]["name"])
        assert config["data"][Path(script).name] == REDIS_HA_SCRIPT.read_text()
        assert container["args"] == [name]
    (quorum,) = re.findall(r"sentinel monitor .* (\d+)\"$", REDIS_HA_SCRIPT.read_text(), re.M)
    assert len(topology.sentinels) // 2 < int(quorum) <= len(topology.sentinels) - 1, (
        "a majority decides, and a failover still happens with one pod gone"
    )


def test_secrets_come_from_the_documented_secret(rendered: Rendered) -> None:
    example = next(d for d in yaml.safe_load_all(SECRET_EXAMPLE.read_text()) if d)
    documented = set(example["stringData"])
    for auth in rendered.all("TriggerAuthentication"):  # what KEDA reads
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == example["metadata"]["name"]
            assert ref["key"] in documented, ref["key"]
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
