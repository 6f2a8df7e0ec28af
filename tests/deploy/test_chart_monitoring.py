"""The chart's alerts and dashboard: promtool checks the rules and proves they fire, and every
series they read is one the gateway exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import CI_VALUES, NAMESPACE, RELEASE, Helm, Manifest, kinds, only
from tests.gateway import GatewayFactory, gql

CI = {path.name.removesuffix("-values.yaml"): path for path in CI_VALUES}
FULLNAME = f"{RELEASE}-maas-gateway"
RULES_TEST = Path(__file__).with_name("alert_rules_test.yaml")
ENABLED = {"metrics": {"prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}}
ALERTS = {
    "MaasGatewayUpstreamBreakerOpen",
    "MaasGatewayNotReady",
    "MaasGatewayServerErrors",
    "MaasGatewayUpstreamSlow",
    "MaasGatewayRedisDegraded",
}
# A series name in PromQL: the gateway's own, and the process collector's.
SERIES = re.compile(r"\b((?:maas_gateway|process)_[a-z0-9_]+)\b")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path is not None, "promtool is needed (Debian's prometheus package; .ci/run installs it)"
    return path


def rules_file(manifests: list[Manifest], directory: Path) -> Path:
    """The PrometheusRule's groups as a Prometheus rules file, as the operator hands them over."""
    rule = only(manifests, "PrometheusRule")
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
    return path


def rules(manifests: list[Manifest]) -> list[dict[str, Any]]:
    return [r for g in only(manifests, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]


def dashboard(manifests: list[Manifest]) -> tuple[Manifest, dict[str, Any]]:
    [config_map] = [m for m in manifests if m["metadata"]["name"] == f"{FULLNAME}-dashboard"]
    loaded: dict[str, Any] = json.loads(config_map["data"]["maas-gateway.json"])
    return config_map, loaded


def targets(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield from panel.get("targets", [])


def test_prometheus_rule_and_dashboard_are_off_by_default(helm: Helm) -> None:
    manifests = helm.template()
    assert "PrometheusRule" not in kinds(manifests)
    assert not [m for m in manifests if m["metadata"]["name"].endswith("-dashboard")]


@pytest.mark.parametrize("values", ["defaults", "all-features"])
def test_rendered_rules_pass_promtool_check(
    helm: Helm, promtool: str, tmp_path: Path, values: str
) -> None:
    manifests = helm.template(CI[values]) if values in CI else helm.template(overrides=ENABLED)
    done = subprocess.run(
        [promtool, "check", "rules", str(rules_file(manifests, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    expected = len(rules(manifests))
    assert f"SUCCESS: {expected} rules found" in done.stdout


def test_alerts_fire_on_the_series_the_gateway_exports_and_only_then(
    helm: Helm, promtool: str, tmp_path: Path
) -> None:
    """alert_rules_test.yaml: each alert fires after its `for`, with its labels and rendered
    annotations, and stays silent below its threshold or for another release's series."""
    rules_file(helm.template(overrides=ENABLED), tmp_path)
    shutil.copyfile(RULES_TEST, tmp_path / RULES_TEST.name)
    done = subprocess.run(
        [promtool, "test", "rules", RULES_TEST.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULES_TEST.read_text(encoding="utf-8")))
    assert tested == ALERTS


def test_the_rule_selects_this_release_and_takes_its_labels_thresholds_and_extra_rules(
    helm: Helm,
) -> None:
    manifests = helm.template(CI["all-features"])
    rule = only(manifests, "PrometheusRule")
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    found = {r.get("alert", r.get("record")): r for r in rules(manifests)}
    # all-features turns redisDegraded off and adds a recording rule.
    assert set(found) == ALERTS - {"MaasGatewayRedisDegraded"} | {
        "maas_gateway:http_requests:rate5m"
    }
    selector = f'namespace="{NAMESPACE}",service="{FULLNAME}"'
    assert all(selector in r["expr"] for r in found.values() if "alert" in r)
    errors = found["MaasGatewayServerErrors"]
    assert errors["expr"].rstrip().endswith("> 0.02")
    assert (errors["for"], errors["labels"]["severity"]) == ("10m", "critical")


def test_the_rule_selector_can_be_replaced(helm: Helm) -> None:
    overrides = {"metrics": {"prometheusRule": {"enabled": True, "selector": 'job="gateway"'}}}
    exprs = [r["expr"] for r in rules(helm.template(overrides=overrides))]
    assert exprs and all('{job="gateway"' in expr for expr in exprs)
    assert not any("service=" in expr for expr in exprs)


def test_dashboard_is_a_configmap_the_grafana_sidecar_loads(helm: Helm) -> None:
    config_map, board = dashboard(helm.template(CI["all-features"]))
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "MAAS"}
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert board["uid"] == "maas-gateway"
    assert board["title"]
    relabelled = {"metrics": {"grafanaDashboard": {"enabled": True, "labels": {"dash": "yes"}}}}
    config_map, _ = dashboard(helm.template(overrides=relabelled))
    assert config_map["metadata"]["labels"]["dash"] == "yes"


def test_dashboard_panels_query_prometheus_through_its_variables(helm: Helm) -> None:
    _, board = dashboard(helm.template(overrides=ENABLED))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace", "service", "pod"} <= variables
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    drawn = [p for p in board["panels"] if p["type"] != "row"]
    assert len(drawn) >= 20
    for panel in drawn:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
    for target in targets(board):
        used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
        assert used <= variables, target["expr"]
        assert 'namespace="$namespace",service="$service",pod=~"$pod"' in target["expr"]


def test_dashboard_panels_fit_the_grid_without_overlapping(helm: Helm) -> None:
    _, board = dashboard(helm.template(overrides=ENABLED))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered


def test_every_series_the_alerts_and_dashboard_read_is_one_the_gateway_exports(
    helm: Helm, start_gateway: GatewayFactory
) -> None:
    """Against a running gateway's /metrics, with Redis configured (its series appear only
    then; unreachable here, so it reports itself degraded) and MAAS called once."""
    manifests = helm.template(overrides=ENABLED)
    _, board = dashboard(manifests)
    queries = [r["expr"] for r in rules(manifests)]
    queries += [t["expr"] for t in targets(board)]
    queries += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    read = {name for query in queries for name in SERIES.findall(query)}
    gateway = start_gateway(redis_url="redis://127.0.0.1:9/0")
    assert gql(gateway.url, "{ bootResources { id } }").status_code == 200
    exported = _exported_series(httpx.get(f"{gateway.url}/metrics", timeout=10).text)
    assert len(read) >= 20
    assert read - exported == set()


def _exported_series(exposition: str) -> set[str]:
    """The series names a scrape can yield, families without samples yet included."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names = set()
    for family in text_string_to_metric_families(exposition):
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names
