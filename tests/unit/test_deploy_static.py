"""Static checks of the deployment files: compose, Dockerfiles, Kubernetes, monitoring.

Nothing here needs a Docker engine or a cluster: the files are parsed and held to what the
stack needs to build and start as designed (one package per image, non-root, healthchecks
on /readyz, Redis healthy before the apps, KEDA scaling the transcribers on stream lag).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from whisp_shared import streams

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
OVERRIDE = ROOT / "docker-compose.override.yml"
K8S = ROOT / "deploy" / "k8s"
PROMETHEUS = ROOT / "deploy" / "monitoring" / "prometheus.yml"


@dataclass(frozen=True)
class Svc:
    name: str  # compose service, Kubernetes Deployment and Service
    folder: str
    package: str
    module: str
    section: str
    port: int

    @property
    def host_var(self) -> str:
        return f"WHISP_{self.section.upper()}__HOST"

    @property
    def image(self) -> str:
        return f"whisptt/{self.folder}"


APPS = (
    Svc("audio", "audio-service", "whisp-audio-service", "whisp_audio", "audio", 8001),
    Svc(
        "transcription",
        "transcription-service",
        "whisp-transcription-service",
        "whisp_transcription",
        "transcription",
        8010,
    ),
    Svc("agents", "agent-service", "whisp-agent-service", "whisp_agent", "agents", 8003),
    Svc("gateway", "gateway", "whisp-gateway", "whisp_gateway", "web", 8000),
)
APP_IDS = [s.name for s in APPS]
BY_NAME = {s.name: s for s in APPS}
# Names that must not appear in another service's Dockerfile (the CLI is never in an image).
ALL_NAMES = {s.name: {s.package, s.module} for s in APPS} | {"cli": {"whisp-cli", "whisp_cli"}}


# --- helpers ---------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def env_map(environment: Any) -> dict[str, str | None]:
    """Compose `environment` as a mapping, whether written as a list or a mapping."""
    if environment is None:
        return {}
    if isinstance(environment, dict):
        return {str(k): None if v is None else str(v) for k, v in environment.items()}
    out: dict[str, str | None] = {}
    for item in environment:
        key, sep, value = str(item).partition("=")
        out[key] = value if sep else None
    return out


def as_argv(command: Any) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def healthcheck_argv(check: dict[str, Any]) -> list[str]:
    test = check.get("test")
    assert test, "healthcheck has no test"
    argv = as_argv(test)
    if argv[0] == "CMD-SHELL":
        return shlex.split(" ".join(argv[1:]))
    return argv[1:] if argv[0] == "CMD" else argv


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    result = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        result.append(Instruction(keyword.upper(), args.strip()))
    return result


def resolve_args(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in {".yaml", ".yml"})


def k8s_docs() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in k8s_files():
        with path.open(encoding="utf-8") as fh:
            for doc in yaml.safe_load_all(fh):
                if doc is not None:
                    yield path, doc


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in deploy/k8s, found {len(found)}"
    return found[0]


def only_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]


# --- compose ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    assert isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def test_compose_has_redis_and_every_app(services: dict[str, Any]) -> None:
    assert {"redis", *APP_IDS} <= set(services)


def test_every_non_redis_service_builds_from_an_existing_dockerfile(
    services: dict[str, Any],
) -> None:
    for name, svc in services.items():
        if name == "redis":
            assert "build" not in svc
            continue
        build = svc.get("build")
        assert isinstance(build, dict), f"{name}: build must name a context and a dockerfile"
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = context / build["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        if name in BY_NAME:
            assert context == ROOT, f"{name}: the context must be the repo root (shared/, uv.lock)"
            assert dockerfile == ROOT / BY_NAME[name].folder / "Dockerfile"


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert isinstance(check, dict), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        argv = healthcheck_argv(check)
        assert argv and argv[0] != "NONE", f"{name}: empty healthcheck"


def test_redis_healthcheck_pings(services: dict[str, Any]) -> None:
    assert healthcheck_argv(services["redis"]["healthcheck"]) == ["redis-cli", "ping"]


@pytest.mark.parametrize("name", APP_IDS)
def test_app_healthcheck_asks_readyz_on_its_port(services: dict[str, Any], name: str) -> None:
    argv = healthcheck_argv(services[name]["healthcheck"])
    text = " ".join(argv)
    assert argv[0] in {"python", "python3"}, "slim images have no curl: use python's urllib"
    assert "urllib" in text
    assert f"127.0.0.1:{BY_NAME[name].port}/readyz" in text


@pytest.mark.parametrize("name", APP_IDS)
def test_app_environment(services: dict[str, Any], name: str) -> None:
    env = env_map(services[name].get("environment"))
    svc = BY_NAME[name]
    assert env.get("REDIS_URL") == "redis://redis:6379/0"
    assert env.get(svc.host_var) == "0.0.0.0"
    assert env.get("WHISP_MODE") == "production"
    port = env.get(f"WHISP_{svc.section.upper()}__PORT")
    assert port in (None, str(svc.port))


@pytest.mark.parametrize("name", APP_IDS)
def test_app_waits_for_healthy_redis(services: dict[str, Any], name: str) -> None:
    depends = services[name].get("depends_on")
    assert isinstance(depends, dict), f"{name}: depends_on must use the long form"
    assert depends.get("redis", {}).get("condition") == "service_healthy"


def test_gateway_waits_for_healthy_audio_and_publishes_8000(services: dict[str, Any]) -> None:
    gateway = services["gateway"]
    assert gateway["depends_on"]["audio"]["condition"] == "service_healthy"
    assert "8000:8000" in [str(p) for p in gateway["ports"]]


def test_gateway_session_secret_is_required_not_defaulted(services: dict[str, Any]) -> None:
    value = env_map(services["gateway"]["environment"])["WHISP_WEB__SESSION_SECRET"]
    assert value is not None
    assert re.fullmatch(r"\$\{WHISP_WEB__SESSION_SECRET:\?[^}]*\}", value), value


def test_openai_key_is_never_set_empty(services: dict[str, Any]) -> None:
    """An empty key is a placeholder that production mode refuses: pass it through or omit."""
    for name, svc in services.items():
        for key, value in env_map(svc.get("environment")).items():
            if key.endswith("OPENAI_API_KEY"):
                assert value is None or (value.startswith("${") and ":-}" not in value), name


def test_transcription_runs_replicas_without_a_host_port(services: dict[str, Any]) -> None:
    transcription = services["transcription"]
    assert transcription["deploy"]["replicas"] >= 2
    assert not transcription.get("ports"), "a fixed host port stops replicas from starting"
    assert "container_name" not in transcription


def test_audio_gets_the_sound_devices(services: dict[str, Any]) -> None:
    devices = [str(d).split(":")[0] for d in services["audio"].get("devices", [])]
    assert "/dev/snd" in devices


def test_redis_persists_with_appendonly_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert str(redis["image"]).startswith("redis:7")
    argv = as_argv(redis["command"])
    assert "--appendonly" in argv
    assert argv[argv.index("--appendonly") + 1] == "yes"
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in redis["volumes"]}
    assert "/data" in mounts
    assert mounts["/data"] in (compose.get("volumes") or {}), "/data must be a named volume"


def test_named_volumes_are_declared_and_bind_sources_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_override_is_a_local_dev_layer(services: dict[str, Any]) -> None:
    override = load_yaml(OVERRIDE)
    assert set(override["services"]) <= set(services), "override names an unknown service"
    for name in APP_IDS:
        env = env_map(override["services"][name].get("environment"))
        assert env.get("WHISP_MODE") == "local", name
    secret = env_map(override["services"]["gateway"]["environment"])["WHISP_WEB__SESSION_SECRET"]
    assert secret, "local runs need a (placeholder) session secret"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    lines = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (".git", "data", "tests/bench/results"):
        assert entry in lines, entry
    assert lines & {".venv", "**/.venv"}
    assert lines & {"**/__pycache__", "__pycache__"}


# --- Dockerfiles -----------------------------------------------------------------------


@pytest.mark.parametrize("name", APP_IDS)
def test_dockerfile(name: str) -> None:
    svc = BY_NAME[name]
    text = (ROOT / svc.folder / "Dockerfile").read_text()
    instructions = dockerfile_instructions(text)
    keywords = [i.keyword for i in instructions]

    # Multi-stage, and the final stage is python:3.11-slim.
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            key, _, value = ins.args.partition("=")
            args.setdefault(key, value)
    froms = [resolve_args(i.args.split()[0], args) for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "expected a builder stage and a runtime stage"
    assert froms[-1] == "python:3.11-slim"

    # Installs only this service's package (plus shared), from the lockfile, without dev deps.
    installs = [i.args for i in instructions if i.keyword == "RUN" and "uv " in i.args]
    assert installs, "no uv step"
    for run in installs:
        if "uv sync" in run or "uv export" in run:
            assert f"--package {svc.package}" in run, run
            assert "--frozen" in run or "--locked" in run, run
            assert "--no-dev" in run, run
            assert "--all-packages" not in run, run
    assert svc.package in text
    for other, names in ALL_NAMES.items():
        if other != name:
            for forbidden in names:
                assert forbidden not in text, f"{svc.folder}/Dockerfile mentions {forbidden}"

    # Runs as a non-root user.
    users = [i.args.split(":")[0] for i in instructions if i.keyword == "USER"]
    assert users, "no USER"
    assert users[-1] not in {"root", "0"}

    # Healthcheck on /readyz with python's urllib (no curl in slim images).
    checks = [i.args for i in instructions if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "NONE" not in checks[0].split()
    assert "/readyz" in checks[0]
    assert "urllib" in checks[0]

    expose = [i.args for i in instructions if i.keyword == "EXPOSE"]
    assert expose == [str(svc.port)]
    cmd = [i.args for i in instructions if i.keyword == "CMD"]
    assert cmd[-1] == f'["python", "-m", "{svc.module}"]'
    assert keywords.index("USER") < keywords.index("CMD")


def test_audio_image_has_the_sound_libraries() -> None:
    text = (ROOT / "audio-service" / "Dockerfile").read_text()
    runtime = text[text.rindex("FROM ") :]
    assert "libportaudio2" in runtime
    assert "libsndfile1" in runtime


# --- Kubernetes ------------------------------------------------------------------------


def test_every_k8s_document_parses_and_has_apiversion_and_kind() -> None:
    files = k8s_files()
    assert len(files) >= 5
    for path in files:
        with path.open(encoding="utf-8") as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d is not None]
        assert docs, f"{path} is empty"
        for doc in docs:
            assert isinstance(doc, dict), path
            assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], path
            assert isinstance(doc.get("kind"), str) and doc["kind"], path


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    resources = set(kustomization["resources"])
    for resource in resources:
        assert (K8S / resource).is_file(), resource
    manifests = {p.name for p in k8s_files()} - {"kustomization.yaml"}
    assert "secret.example.yaml" not in resources
    assert resources == manifests - {"secret.example.yaml"}


@pytest.mark.parametrize("name", APP_IDS)
def test_k8s_deployment_and_service(name: str) -> None:
    svc = BY_NAME[name]
    deployment = k8s_object("Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    container = only_container(deployment)

    assert container["image"].split(":")[0] == svc.image
    ports = {p["containerPort"] for p in container["ports"]}
    assert ports == {svc.port}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    requests = container["resources"]["requests"]
    assert {"cpu", "memory"} <= set(requests)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"].get("runAsUser", 1) != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False

    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_URL"]["value"].startswith("redis://")
    assert env[svc.host_var]["value"] == "0.0.0.0"
    assert env["WHISP_MODE"]["value"] == "production"
    config_path = env["WHISP_CONFIG"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert str(Path(config_path).parent) in mounts
    for var in env.values():  # secrets come from a Secret, never a literal
        if var["name"].endswith(("SECRET", "API_KEY")):
            assert "secretKeyRef" in var["valueFrom"], var["name"]

    service = k8s_object("Service", name)
    assert service["spec"]["selector"].items() <= pod_labels(deployment).items()
    assert svc.port in {p["port"] for p in service["spec"]["ports"]}


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    return labels


def test_gateway_session_secret_comes_from_a_required_secret() -> None:
    env = {e["name"]: e for e in only_container(k8s_object("Deployment", "gateway"))["env"]}
    ref = env["WHISP_WEB__SESSION_SECRET"]["valueFrom"]["secretKeyRef"]
    assert not ref.get("optional", False)


def test_keda_scales_transcription_on_recordings_lag() -> None:
    scaled = [d for _, d in k8s_docs() if d["kind"] == "ScaledObject"]
    assert len(scaled) == 1
    spec = scaled[0]["spec"]
    target = spec["scaleTargetRef"]
    assert target["name"] == "transcription"
    assert target.get("kind", "Deployment") == "Deployment"
    deployment = k8s_object("Deployment", "transcription")
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    assert spec["minReplicaCount"] == 1
    assert spec["maxReplicaCount"] == 10
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis-streams"
    meta = trigger["metadata"]
    assert all(isinstance(v, str) for v in meta.values()), "trigger metadata must be strings"
    assert meta["stream"] == streams.RECORDINGS == "whisp:recordings"
    assert meta["consumerGroup"] == streams.TRANSCRIBERS_GROUP == "transcribers"
    assert meta["lagCount"] == "5"
    assert meta["activationLagCount"] == "1"
    assert meta.get("address") or meta.get("host")


def test_secret_example_holds_only_placeholders() -> None:
    from whisp_shared.config import PLACEHOLDER_SECRETS

    docs = [d for d in yaml.safe_load_all((K8S / "secret.example.yaml").read_text()) if d]
    (secret,) = docs
    assert secret["kind"] == "Secret"
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert "WHISP_WEB__SESSION_SECRET" in values
    for key, value in values.items():
        # Applied by mistake, a placeholder is refused in production mode.
        assert value.strip().lower() in PLACEHOLDER_SECRETS, key


def test_configmap_config_loads_in_every_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster's config.yaml is valid for each section's settings (unknown keys fail)."""
    from whisp_agent.settings import AgentSettings
    from whisp_audio.settings import AudioSettings
    from whisp_gateway.settings import GatewaySettings
    from whisp_shared.config import BusSettings, LoggingSettings
    from whisp_shared.service import ServiceSettings
    from whisp_transcription.settings import TranscriptionSettings

    configmap = k8s_object("ConfigMap", "whisp-config")
    path = tmp_path / "config.yaml"
    path.write_text(configmap["data"]["config.yaml"])
    for key in list(os.environ):
        if key.startswith("WHISP_") or key in {"REDIS_URL", "OPENAI_API_KEY", "MODE"}:
            monkeypatch.delenv(key)
    monkeypatch.setenv("WHISP_CONFIG", str(path))
    monkeypatch.setenv("WHISP_WEB__SESSION_SECRET", "a-real-looking-secret-for-the-test-only")

    for common in (BusSettings(), LoggingSettings()):
        assert common.mode == "production"
    loaded: dict[str, ServiceSettings] = {
        cls.section: cls()
        for cls in (AudioSettings, TranscriptionSettings, AgentSettings, GatewaySettings)
    }
    for svc in APPS:
        assert loaded[svc.section].mode == "production"
        assert loaded[svc.section].port == svc.port


# --- monitoring ------------------------------------------------------------------------


def test_prometheus_scrapes_every_service_metrics() -> None:
    config = load_yaml(PROMETHEUS)
    targets: set[tuple[str, int]] = set()
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for sd in job.get("dns_sd_configs", []):
            targets |= {(n, sd["port"]) for n in sd["names"]}
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                targets.add((host, int(port)))
    assert {(s.name, s.port) for s in APPS} <= targets
