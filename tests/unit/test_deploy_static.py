"""Static checks of the deployment files: compose and the Dockerfile.

Nothing here needs a Docker engine or a cluster: the files are parsed and held to what the
stack needs to build and start as designed (one Dockerfile whose build arguments pick one
package per image, non-root, healthchecks on /readyz, Redis healthy before the apps). The
Kubernetes overlays are checked as rendered (`test_k8s_render.py`), the monitoring files in
`test_deploy_monitoring.py`.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
OVERRIDE = ROOT / "docker-compose.override.yml"
SECRET_EXAMPLE = ROOT / "deploy" / "k8s" / "secret.example.yaml"


@dataclass(frozen=True)
class Svc:
    name: str  # compose service, Kubernetes Deployment and Service
    folder: str
    package: str
    module: str
    section: str
    port: int

    @property
    def env_section(self) -> str:
        """The section as its environment prefix spells it (the Dockerfile's SECTION)."""
        return self.section.upper()

    @property
    def host_var(self) -> str:
        return f"WHISP_{self.env_section}__HOST"

    @property
    def port_var(self) -> str:
        return f"WHISP_{self.env_section}__PORT"

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
BY_PACKAGE = {s.package: s for s in APPS}
# The one Dockerfile names no package or module: build arguments pick them. (The CLI is never
# in an image.)
ALL_NAMES = {name for s in APPS for name in (s.package, s.module)} | {"whisp-cli", "whisp_cli"}
REQUIRED_ARGS = {"SERVICE", "SECTION", "PORT"}


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


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def args(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def dockerfile_stages(instructions: list[Instruction]) -> list[Stage]:
    """The build stages in order, each with the instructions after its FROM."""
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, []))
        elif stages:
            stages[-1].instructions.append(ins)
    return stages


def declared_args(instructions: list[Instruction]) -> dict[str, str | None]:
    """Every ARG the Dockerfile declares, with its default (None: none, a required one)."""
    out: dict[str, str | None] = {}
    for ins in instructions:
        if ins.keyword == "ARG":
            key, sep, value = ins.args.partition("=")
            default = value.strip('"') if sep else None
            if out.get(key) is None:
                out[key] = default
    return out


def env_of(stage: Stage, args: dict[str, str]) -> dict[str, str]:
    """The stage's ENV, with keys and values expanded as BuildKit does (keys too)."""
    env: dict[str, str] = {}
    for line in stage.args("ENV"):
        for pair in shlex.split(line):
            key, _, value = pair.partition("=")
            env[resolve_args(key, args)] = resolve_args(value, args)
    return env


def load_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def workspace_members() -> dict[str, dict[str, Any]]:
    """Each workspace member's folder -> its `[project]` table."""
    members = load_toml(ROOT / "pyproject.toml")["tool"]["uv"]["workspace"]["members"]
    return {m: load_toml(ROOT / m / "pyproject.toml")["project"] for m in members}


def dockerignore_patterns() -> list[str]:
    return [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` (or a folder above it) out of the context, with
    Docker's matching for the forms the file uses: `*`, `?` and `[...]` stay within one
    path part, `**/` matches at any depth; `!` exceptions are not modelled (none are used)."""
    parts = path.split("/")
    from_root = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    anywhere = ["/".join(parts[j : i + 1]) for i in range(len(parts)) for j in range(i + 1)]
    for pattern in patterns:
        assert not pattern.startswith("!"), pattern
        candidates = anywhere if pattern.startswith("**/") else from_root
        if any(_glob(pattern.removeprefix("**/")).fullmatch(c) for c in candidates):
            return True
    return False


def _glob(pattern: str) -> re.Pattern[str]:
    escaped = re.escape(pattern)
    for glob, regex in ((r"\*", "[^/]*"), (r"\?", "[^/]"), (r"\[", "["), (r"\]", "]")):
        escaped = escaped.replace(glob, regex)
    return re.compile(escaped)


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


def builds(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc["build"] for name, svc in services.items() if name != "redis"}


def build_args(build: dict[str, Any]) -> dict[str, str]:
    args = build.get("args") or {}
    assert isinstance(args, dict), "build args must be a mapping"
    return {str(k): str(v) for k, v in args.items()}


def test_every_non_redis_service_builds_from_the_root_dockerfile(
    services: dict[str, Any],
) -> None:
    assert "build" not in services["redis"]
    for name, build in builds(services).items():
        assert isinstance(build, dict), f"{name}: build must name a context and a dockerfile"
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT, f"{name}: the context must be the repo root (workspace, uv.lock)"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
    assert DOCKERFILE.is_file()
    assert not list(ROOT.glob("*/Dockerfile")), "one Dockerfile for all: no per-service copies"


@pytest.mark.parametrize("name", APP_IDS)
def test_app_build_args_pick_its_package_section_and_port(
    services: dict[str, Any], name: str
) -> None:
    svc = BY_NAME[name]
    args = build_args(services[name]["build"])
    assert args["SERVICE"] == svc.package
    assert args["SECTION"] == svc.env_section
    assert args["PORT"] == str(svc.port)
    image = str(services[name]["image"])
    assert image.partition(":")[0] == svc.image, "compose and Kubernetes name the same image"


def test_build_args_are_the_dockerfiles(services: dict[str, Any]) -> None:
    """Compose passes only arguments the Dockerfile declares, and every required one."""
    declared = declared_args(dockerfile_instructions(DOCKERFILE.read_text()))
    assert {k for k, v in declared.items() if v is None} == REQUIRED_ARGS
    for name, build in builds(services).items():
        args = build_args(build)
        assert set(args) <= set(declared), f"{name}: unknown {set(args) - set(declared)}"
        assert set(args) >= REQUIRED_ARGS, f"{name}: missing {REQUIRED_ARGS - set(args)}"


def test_every_build_names_a_runnable_workspace_package(services: dict[str, Any]) -> None:
    """What the Dockerfile relies on: SERVICE is a workspace package whose console script of
    the same name runs its `__main__`, and EXTRAS are extras it declares."""
    packages = {
        project["name"]: (folder, project) for folder, project in workspace_members().items()
    }
    for name, build in builds(services).items():
        args = build_args(build)
        package = args["SERVICE"]
        assert package != "whisp-cli", "the CLI is never in an image"
        assert package in packages, f"{name}: {package} is not a workspace package"
        folder, project = packages[package]
        module = BY_PACKAGE[package].module
        assert project["scripts"][package] == f"{module}.__main__:main", name
        assert (ROOT / folder / "src" / module / "__main__.py").is_file(), name
        assert args["SECTION"].lower() == BY_PACKAGE[package].section, name
        for extra in args.get("EXTRAS", "").split():
            assert extra in project.get("optional-dependencies", {}), f"{name}: extra {extra}"


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
    patterns = dockerignore_patterns()
    lines = set(patterns)
    for entry in (".git", "data"):
        assert entry in lines, entry
    assert ignored("tests/bench/results", patterns)
    assert lines & {".venv", "**/.venv"}
    assert lines & {"**/__pycache__", "__pycache__"}
    for path in ("gateway/.venv", "shared/src/whisp_shared/__pycache__"):
        assert ignored(path, patterns), path


def test_dockerignore_keeps_every_workspace_member_in_the_context() -> None:
    """The Dockerfile copies the context whole: each member (and the lock) must be in it."""
    patterns = dockerignore_patterns()
    for path in ("pyproject.toml", "uv.lock", *workspace_members()):
        assert not ignored(path, patterns), path
    for folder in workspace_members():
        assert "/" not in folder, f"{folder}: the Dockerfile's */pyproject.toml misses it"
        assert not ignored(f"{folder}/pyproject.toml", patterns), folder


# --- Dockerfiles -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def test_dockerfile_is_generic(dockerfile: list[Instruction]) -> None:
    code = "\n".join(f"{i.keyword} {i.args}" for i in dockerfile)  # comments may give examples
    for name in ALL_NAMES:
        assert name not in code, f"the Dockerfile names {name}: build arguments pick services"

    # Multi-stage, and the final stage is python:3.11-slim.
    defaults = {k: v for k, v in declared_args(dockerfile).items() if v is not None}
    stages = dockerfile_stages(dockerfile)
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    assert resolve_args(stages[-1].base, defaults) == "python:3.11-slim"

    # Installs only SERVICE's package (with shared), from the lockfile, without dev deps:
    # third-party dependencies in a layer of their own, then the workspace packages.
    installs = [i.args for i in dockerfile if i.keyword == "RUN" and "uv " in i.args]
    assert installs, "no uv step"
    for run in installs:
        if "uv sync" in run or "uv export" in run:
            assert re.search(r'--package "?\$\{?SERVICE\}?"?', run), run
            assert "--frozen" in run or "--locked" in run, run
            assert "--no-dev" in run, run
            assert "--all-packages" not in run, run
    syncs = [run for run in installs if "uv sync" in run]
    assert len(syncs) == 2
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1], "the venv must not point into a source tree"

    # The runtime stage takes only the venv: no source tree, no other package.
    runtime = stages[-1]
    assert runtime.args("COPY") == ["--from=builder /app/.venv /app/.venv"]

    # Runs as a non-root user.
    users = [i.args.split(":")[0] for i in dockerfile if i.keyword == "USER"]
    assert users, "no USER"
    assert users[-1] not in {"root", "0"}

    # Healthcheck on /readyz with python's urllib (no curl in slim images).
    checks = runtime.args("HEALTHCHECK")
    assert len(checks) == 1
    assert "NONE" not in checks[0].split()
    assert "/readyz" in checks[0]
    assert "urllib" in checks[0]

    # The command is SERVICE's own console script, linked under one name by the builder.
    cmd = runtime.args("CMD")
    assert cmd[-1] == '["whisp-service"]'
    builder = next(stage for stage in stages if stage.name == "builder")
    assert any('ln -s "$SERVICE" /app/.venv/bin/whisp-service' in r for r in builder.args("RUN"))
    keywords = [i.keyword for i in runtime.instructions]
    assert keywords.index("USER") < keywords.index("CMD")


@pytest.mark.parametrize("name", APP_IDS)
def test_dockerfile_builds_each_service_from_its_args(
    services: dict[str, Any], dockerfile: list[Instruction], name: str
) -> None:
    """The runtime stage as compose's arguments resolve it: listening on all interfaces,
    on the service's port, in production mode, the healthcheck reading that port."""
    svc = BY_NAME[name]
    declared = declared_args(dockerfile)
    args = {k: v for k, v in declared.items() if v is not None}
    args |= build_args(services[name]["build"])
    runtime = dockerfile_stages(dockerfile)[-1]

    env = env_of(runtime, args)
    assert env[svc.host_var] == "0.0.0.0"
    assert env[svc.port_var] == str(svc.port)
    assert env["WHISP_MODE"] == "production"
    check = runtime.args("HEALTHCHECK")[0]
    assert "os.environ[os.environ['WHISP_PORT_ENV']]" in check
    assert env["WHISP_PORT_ENV"] == svc.port_var
    assert [resolve_args(e, args) for e in runtime.args("EXPOSE")] == [str(svc.port)]


def test_audio_image_has_the_sound_libraries_and_group(
    services: dict[str, Any], dockerfile: list[Instruction]
) -> None:
    args = build_args(services["audio"]["build"])
    assert {"libportaudio2", "libsndfile1"} <= set(args["RUNTIME_APT"].split())
    assert args["USER_GROUPS"] == "audio"
    runtime = dockerfile_stages(dockerfile)[-1]
    runs = runtime.args("RUN")
    assert any("apt-get install" in r and "$RUNTIME_APT" in r for r in runs)
    assert any("useradd" in r and "--groups" in r and "$USER_GROUPS" in r for r in runs)


def test_local_llm_image_compiles_the_local_extra(services: dict[str, Any]) -> None:
    args = build_args(services["local-llm"]["build"])
    assert args["SERVICE"] == BY_NAME["agents"].package
    assert "local" in args["EXTRAS"].split()
    assert {"build-essential", "cmake"} <= set(args["BUILD_APT"].split())


# --- Kubernetes ------------------------------------------------------------------------


def test_secret_example_holds_only_placeholders() -> None:
    from whisp_shared.config import PLACEHOLDER_SECRETS

    docs = [d for d in yaml.safe_load_all(SECRET_EXAMPLE.read_text()) if d]
    (secret,) = docs
    assert secret["kind"] == "Secret"
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert "WHISP_WEB__SESSION_SECRET" in values
    for key, value in values.items():
        # Applied by mistake, a placeholder is refused in production mode.
        assert value.strip().lower() in PLACEHOLDER_SECRETS, key
