"""The monitoring files held to the code: what Prometheus scrapes, what the Grafana dashboard
asks for, how the compose observability overlay wires them.

The dashboard's queries name metrics and labels as strings, so a renamed metric would leave
a panel silently empty; here every metric a query names must be one the services register
(found by importing every module that uses prometheus_client, and asking its collectors what
they expose), and every label it groups or filters by must be one of those metrics' labels.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from tests.unit.test_deploy_static import APPS, ROOT, as_argv, load_yaml

MONITORING = ROOT / "deploy" / "monitoring"
PROMETHEUS = MONITORING / "prometheus.yml"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
PROVISIONING = MONITORING / "grafana" / "provisioning"
COMPOSE = ROOT / "docker-compose.yml"
OBSERVABILITY = ROOT / "docker-compose.observability.yml"
EXPOSED_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
# Labels every series gets when it is scraped (prometheus.yml's jobs and relabelling).
SCRAPE_LABELS = {"job", "instance", "service", "pod"}
METRIC = re.compile(r"\bwhisp_[a-z0-9_]+")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"\{([^}]*)\}")


@functools.cache
def defined_metrics() -> dict[str, frozenset[str]]:
    """Every series name the services can expose -> its label names, from the collectors of
    every module under `*/src` that imports prometheus_client."""
    found: dict[str, frozenset[str]] = {}
    for path in sorted(ROOT.glob("*/src/**/*.py")):
        if "prometheus_client" not in path.read_text(encoding="utf-8"):
            continue
        src = next(p for p in path.parents if p.name == "src")
        module = importlib.import_module(".".join(path.relative_to(src).with_suffix("").parts))
        for collector in vars(module).values():
            if not isinstance(collector, MetricWrapperBase):
                continue
            labels = frozenset(collector._labelnames)
            for described in collector.describe():
                for suffix in EXPOSED_SUFFIXES[described.type]:
                    found[described.name + suffix] = labels | (
                        {"le"} if suffix == "_bucket" else set()
                    )
    return found


def dashboards() -> list[Path]:
    paths = sorted(DASHBOARDS.glob("*.json"))
    assert paths, f"no dashboards in {DASHBOARDS}"
    return paths


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


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


def test_the_metric_index_sees_every_service() -> None:
    """The check below is only as good as this index: one metric of each service at least."""
    names = defined_metrics()
    for prefix in ("whisp_bus_", "whisp_audio_", "whisp_transcription_", "whisp_agent_",
                   "whisp_gateway_", "whisp_gateway_wyoming_"):  # fmt: skip
        assert any(n.startswith(prefix) for n in names), prefix
    assert names["whisp_bus_handle_seconds_bucket"] == {"stream", "group", "le"}
    assert "whisp_agent_tokens_total" in names and "whisp_agent_tokens" not in names


def test_dashboard_queries_only_metrics_and_labels_the_code_defines() -> None:
    names = defined_metrics()
    for path in dashboards():
        for title, expr in queries(json.loads(path.read_text())):
            used = set(METRIC.findall(expr))
            assert used, f"{path.name} / {title}: no WhisPTT metric in {expr}"
            unknown = used - set(names)
            assert not unknown, f"{path.name} / {title}: {sorted(unknown)} are defined nowhere"
            labels = {
                label.strip()
                for group in GROUPING.findall(expr)
                for label in group.split(",")
                if label.strip()
            } | {
                match.split("=")[0].strip(" !~")
                for selector in SELECTOR.findall(expr)
                for match in selector.split(",")
                if match.strip()
            }
            known = set().union(*(names[n] for n in used)) | SCRAPE_LABELS
            assert labels <= known, f"{path.name} / {title}: no label {sorted(labels - known)}"


def test_dashboard_is_well_formed() -> None:
    uids = set()
    for path in dashboards():
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] not in uids
        uids.add(dashboard["uid"])
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), "panel ids must be unique"
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            if panel["type"] == "row":
                continue
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A compose service's bind mounts: container path -> host path."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            out[target] = (ROOT / source).resolve()
    return out


def test_observability_overlay_wires_prometheus_and_grafana() -> None:
    base = load_yaml(COMPOSE)
    overlay = load_yaml(OBSERVABILITY)
    services = overlay["services"]
    assert not set(services) & set(base["services"]), "the overlay adds, it does not change"
    for name, svc in services.items():
        for dependency in svc.get("depends_on", {}):
            assert dependency in base["services"] or dependency in services, name
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: loopback only"
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith("."):
                assert source in overlay["volumes"], f"{name}: volume {source} not declared"

    prometheus = services["prometheus"]
    flags = dict(a.split("=", 1) for a in as_argv(prometheus["command"]) if "=" in a)
    assert mounts(prometheus)[flags["--config.file"]] == PROMETHEUS

    grafana = services["grafana"]
    grafana_mounts = mounts(grafana)
    assert grafana_mounts["/etc/grafana/provisioning"] == PROVISIONING
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "whisptt.yml")["providers"]
    assert grafana_mounts[provider["options"]["path"]] == DASHBOARDS
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS / Path(home).relative_to(provider["options"]["path"])).is_file()
    (source,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    host_port = source["url"].removeprefix("http://")
    assert host_port == f"prometheus:{prometheus['ports'][0].rpartition(':')[2]}"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${"), (
        "no default admin password"
    )
