"""The Helm chart: lint, Kubernetes-schema validity, values schema, and the guarantees it makes."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from annotated_types import Ge, Gt, Le

from app.core.settings import ENV_PREFIX, Settings
from tests.deploy.conftest import (
    CHART,
    CI_VALUES,
    NAMESPACE,
    RELEASE,
    REPO,
    Helm,
    Manifest,
    kinds,
    load_values,
    only,
)

FULLNAME = f"{RELEASE}-maas-gateway"
SELECTOR = {"app.kubernetes.io/name": "maas-gateway", "app.kubernetes.io/instance": RELEASE}
CI = {path.name.removesuffix("-values.yaml"): path for path in CI_VALUES}
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
CHART_META = load_values(CHART / "Chart.yaml")
# Custom resources: not in the Kubernetes schemas, checked by test_service_monitor_* and
# test_chart_monitoring.py (promtool) instead.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Settings the chart sets itself (Secret, mounts, the image's CMD), so config must not.
CHART_MANAGED_SETTINGS = {
    "maas_api_key",
    "maas_api_key_file",
    "maas_ca_bundle",
    "tokens_file",
    "host",
    "port",
    "redis_password",
}
# A MAAS-shaped key (18:18:32), as the gateway's settings validate it.
API_KEY = "ChartTestConsumer1:ChartTestTokenKey1:ChartTestTokenSecret000000000001"
REAL_MAAS = {
    "config": {"maasUrl": "http://maas.internal:5240/MAAS"},
    "secret": {"maasApiKey": API_KEY},
}


def kubernetes_versions() -> list[str]:
    """The oldest version the chart claims (Chart.yaml kubeVersion), 1.30, and the newest known."""
    floor = re.fullmatch(r">=(\d+\.\d+)\.\d+-0", CHART_META["kubeVersion"])
    assert floor, CHART_META["kubeVersion"]
    return sorted({floor.group(1), "1.30", kubernetes_validate.latest_version()}, key=_version)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def deployment(manifests: list[Manifest]) -> Manifest:
    return only(manifests, "Deployment")


def gateway_container(manifests: list[Manifest]) -> Manifest:
    """The gateway's container: the first, whatever sidecars follow it."""
    containers = deployment(manifests)["spec"]["template"]["spec"]["containers"]
    assert containers[0]["name"] == "gateway"
    container: Manifest = containers[0]
    return container


def env_map(container: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- lint and Kubernetes validity -------------------------------------------------------------


def test_chart_lints_without_warnings_on_default_values(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_chart_lints_without_warnings_with_ci_values(helm: Helm, values: Path) -> None:
    result = helm.run("lint", "--strict", str(CHART), "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", kubernetes_versions())
@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_rendered_manifest_is_valid_kubernetes(
    helm: Helm, values: Path, version: str
) -> None:
    manifests = helm.template(values)
    checked = []
    for manifest in manifests:
        if manifest["kind"] in CRD_KINDS:
            continue
        # strict: unknown fields fail too, as a typo in a template would.
        kubernetes_validate.validate(manifest, version, strict=True)
        checked.append(manifest["kind"])
    assert {"Deployment", "Service", "ConfigMap", "Pod"} <= set(checked)


def test_kubernetes_validation_rejects_a_misplaced_field(helm: Helm) -> None:
    """Guards the check above: a field in the wrong place must fail, not pass unnoticed."""
    manifest = copy.deepcopy(deployment(helm.template()))
    manifest["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, "1.30", strict=True)


def test_ci_values_render_every_template(helm: Helm) -> None:
    """So the validity check above sees every resource the chart can produce."""
    rendered: set[str] = set()
    for path in CI_VALUES:
        result = helm.template_result(path)
        assert result.returncode == 0, result.stderr
        rendered |= set(
            re.findall(r"^# Source: maas-gateway/(templates/\S+)$", result.stdout, re.M)
        )
    templates = {p.relative_to(CHART).as_posix() for p in (CHART / "templates").rglob("*.yaml")}
    assert templates - rendered == set()


def test_service_monitor_scrapes_metrics_on_the_gateway_service(helm: Helm) -> None:
    manifests = helm.template(CI["all-features"])
    monitor = only(manifests, "ServiceMonitor")
    service = only(manifests, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"] == {"matchLabels": service["spec"]["selector"]}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert re.fullmatch(r"\d+s", endpoint["interval"])
    assert endpoint["relabelings"][0]["targetLabel"] == "cluster"


def test_service_monitor_is_off_by_default(helm: Helm) -> None:
    assert "ServiceMonitor" not in kinds(helm.template())


# --- the values schema ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"replicaz": 2}, "additional properties 'replicaz' not allowed"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"config": {"cacheTtlBootResourcez": 30}}, "'cacheTtlBootResourcez' not allowed"),
        ({"config": {"cacheTtlBootResources": 0}}, "/config/cacheTtlBootResources"),
        ({"config": {"maasRetries": 11}}, "/config/maasRetries"),
        ({"config": {"logLevel": "verbose"}}, "/config/logLevel"),
        ({"config": {"maasUrl": "maas.internal:5240"}}, "/config/maasUrl"),
        ({"secret": {"maasApiKey": "not-a-maas-key"}}, "/secret/maasApiKey"),
        ({"service": {"type": "ExternalName"}}, "/service/type"),
        ({"podDisruptionBudget": {"minAvailable": "half"}}, "/podDisruptionBudget/minAvailable"),
        ({"networkPolicy": {"maas": {"cidrs": ["maas.internal"]}}}, "/networkPolicy/maas/cidrs"),
        ({"securityContext": {"runAsNonRoot": "yes"}}, "/securityContext/runAsNonRoot"),
        ({"commonLabels": {"tier": 1}}, "/commonLabels/tier"),
        ({"extraObjects": [{"kind": "ConfigMap"}]}, "/extraObjects/0"),
        ({"extraVolumes": [{"emptyDir": {}}]}, "/extraVolumes/0"),
        ({"extraVolumeMounts": [{"name": "x"}]}, "/extraVolumeMounts/0"),
        ({"initContainers": [{"name": "x"}]}, "/initContainers/0"),
        ({"sidecars": "tls"}, "/sidecars"),
        ({"maasApiKeyFile": {"enabled": "yes"}}, "/maasApiKeyFile/enabled"),
        ({"networkPolicy": {"extraEgress": [{"too": []}]}}, "/networkPolicy/extraEgress/0"),
        (
            {"metrics": {"prometheusRule": {"alerts": {"notReady": {"for": "soon"}}}}},
            "/metrics/prometheusRule/alerts/notReady/for",
        ),
        (
            {"metrics": {"prometheusRule": {"alerts": {"serverErrors": {"ratio": 5}}}}},
            "/metrics/prometheusRule/alerts/serverErrors/ratio",
        ),
        (
            {"metrics": {"prometheusRule": {"selector": "job=maas"}}},
            "/metrics/prometheusRule/selector",
        ),
        (
            {"metrics": {"prometheusRule": {"additionalRules": [{"expr": "up"}]}}},
            "/metrics/prometheusRule/additionalRules/0",
        ),
        (
            {"metrics": {"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}}},
            "/metrics/grafanaDashboard/labels/grafana_dashboard",
        ),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else "",
)
def test_invalid_values_are_rejected_by_the_schema(
    helm: Helm, overrides: dict[str, Any], message: str
) -> None:
    result = helm.template_result(overrides=overrides)
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"config": {"maasUrl": "http://maas:5240/MAAS"}},
            "set secret.maasApiKey or existingSecret",
        ),
        ({"gatewayTokens": {"enabled": True}}, "set secret.gatewayTokens or existingSecret"),
        (
            {**REAL_MAAS, "networkPolicy": {"enabled": True}},
            "list MAAS's addresses in networkPolicy.maas.cidrs",
        ),
        (
            {"caBundle": {"pem": "-----BEGIN CERTIFICATE-----", "existingConfigMap": "ca"}},
            "not both",
        ),
        ({"autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 2}}, "maxReplicas"),
    ],
    ids=["maas-without-key", "tokens-without-file", "netpol-without-maas-cidr", "two-cas", "hpa"],
)
def test_values_that_cannot_work_fail_with_an_actionable_message(
    helm: Helm, overrides: dict[str, Any], message: str
) -> None:
    result = helm.template_result(overrides=overrides)
    assert result.returncode != 0
    assert message in result.stderr


# --- config: values -> ConfigMap -> gateway settings ------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def test_config_schema_lists_exactly_the_operator_settings_of_the_gateway() -> None:
    config = SCHEMA["properties"]["config"]
    assert config["additionalProperties"] is False
    expected = {_camel(n) for n in Settings.model_fields} - {
        _camel(n) for n in CHART_MANAGED_SETTINGS
    }
    missing = sorted(expected - set(config["properties"]))
    unknown = sorted(set(config["properties"]) - expected)
    assert not unknown, f"values.schema.json config keys the gateway does not have: {unknown}"
    assert not missing, f"gateway settings missing from values.schema.json config: {missing}"


@pytest.mark.parametrize("name", sorted(set(Settings.model_fields) - CHART_MANAGED_SETTINGS))
def test_config_schema_types_and_limits_match_the_setting(name: str) -> None:
    field = Settings.model_fields[name]
    prop = SCHEMA["properties"]["config"]["properties"][_camel(name)]
    types = set(prop["type"]) if isinstance(prop["type"], list) else {prop["type"]}
    if field.annotation is int:
        assert types == {"integer", "null"}
    elif field.annotation is float:
        assert types == {"number", "null"}
    elif field.annotation is bool:
        assert types == {"boolean", "null"}
    else:
        assert "string" in types
    limits: dict[str, object] = {"exclusiveMinimum": None, "minimum": None, "maximum": None}
    for meta in field.metadata:
        if isinstance(meta, Gt):
            limits["exclusiveMinimum"] = meta.gt
        elif isinstance(meta, Ge):
            limits["minimum"] = meta.ge
        elif isinstance(meta, Le):
            limits["maximum"] = meta.le
    assert {key: prop.get(key) for key in limits} == limits


def test_configmap_values_are_read_by_the_gateway_as_given(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every config key reaches the gateway: env names, number formatting and all."""
    overrides = {
        "config": {
            "maasUrl": "https://maas.internal:5443/MAAS",
            "logLevel": "debug",
            "maasTimeout": 12.5,
            "responseCacheMaxBytes": 268435456,  # Helm would print a float64 as 2.68435456e+08
            "uploadChunkSize": 1048576,
            "cacheStaleTtl": 0,
        },
        "secret": {"maasApiKey": API_KEY},
    }
    data = only(helm.template(overrides=overrides), "ConfigMap")["data"]
    assert all(name.startswith(ENV_PREFIX) for name in data)
    for name in list(Settings.model_fields):
        monkeypatch.delenv(ENV_PREFIX + name.upper(), raising=False)
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.maas_url == "https://maas.internal:5443/MAAS"
    assert settings.log_level == "debug"
    assert settings.maas_timeout == 12.5
    assert settings.response_cache_max_bytes == 268435456
    assert settings.upload_chunk_size == 1048576
    assert settings.cache_stale_ttl == 0


def test_configmap_leaves_out_empty_settings_so_the_gateway_defaults_apply(helm: Helm) -> None:
    data = only(helm.template(), "ConfigMap")["data"]
    assert data == {"MAAS_GATEWAY_LOG_LEVEL": "info"}


def test_chart_app_version_is_the_project_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert CHART_META["appVersion"] == project["project"]["version"]


# --- what the Deployment guarantees -----------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_deployment_is_hardened(helm: Helm, values: Path) -> None:
    manifests = helm.template(values)
    pod = deployment(manifests)["spec"]["template"]["spec"]
    container = gateway_container(manifests)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    # Everything else mounted is read-only: /tmp is the only place the gateway can write.
    assert all(m.get("readOnly") for path, m in mounts.items() if path != "/tmp")
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["resources"]["limits"]["memory"]


def test_service_account_token_is_never_mounted(helm: Helm) -> None:
    account = only(helm.template(), "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    pod = deployment(helm.template())["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_probes_use_livez_for_liveness_and_readyz_for_readiness(helm: Helm) -> None:
    container = gateway_container(helm.template())
    assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_default_replicas_are_two_with_a_disruption_budget(helm: Helm) -> None:
    manifests = helm.template()
    assert deployment(manifests)["spec"]["replicas"] == 2
    budget = only(manifests, "PodDisruptionBudget")
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": SELECTOR}}


def test_replicas_are_left_to_the_autoscaler_when_it_is_enabled(helm: Helm) -> None:
    manifests = helm.template(CI["all-features"])
    assert "replicas" not in deployment(manifests)["spec"]
    autoscaler = only(manifests, "HorizontalPodAutoscaler")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == FULLNAME
    assert {m["resource"]["name"] for m in autoscaler["spec"]["metrics"]} == {"cpu", "memory"}


def test_checksum_annotations_change_only_with_their_own_resource(helm: Helm) -> None:
    def annotations(overrides: dict[str, Any]) -> dict[str, str]:
        merged = {**REAL_MAAS, **overrides}
        manifest = deployment(helm.template(overrides=merged))
        result: dict[str, str] = manifest["spec"]["template"]["metadata"]["annotations"]
        return result

    base = annotations({})
    config_changed = annotations({"config": {**REAL_MAAS["config"], "logLevel": "debug"}})
    other_key = API_KEY.replace("0001", "0002")
    secret_changed = annotations({"secret": {"maasApiKey": other_key}})
    assert re.fullmatch(r"[0-9a-f]{64}", base["checksum/config"])
    assert config_changed["checksum/config"] != base["checksum/config"]
    assert config_changed["checksum/secret"] == base["checksum/secret"]
    assert secret_changed["checksum/secret"] != base["checksum/secret"]
    assert secret_changed["checksum/config"] == base["checksum/config"]


def test_maas_key_is_read_from_the_rendered_secret(helm: Helm) -> None:
    manifests = helm.template(overrides=REAL_MAAS)
    secret = only(manifests, "Secret")
    assert secret["metadata"]["name"] == FULLNAME
    assert set(secret["data"]) == {"maas-api-key"}
    env = env_map(gateway_container(manifests))
    ref = {"secretKeyRef": {"name": FULLNAME, "key": "maas-api-key"}}
    assert env["MAAS_GATEWAY_MAAS_API_KEY"] == ref
    assert gateway_container(manifests)["envFrom"] == [{"configMapRef": {"name": FULLNAME}}]


def test_existing_secret_renders_no_secret_and_the_deployment_reads_it(helm: Helm) -> None:
    manifests = helm.template(CI["existing-secret"])
    assert "Secret" not in kinds(manifests)
    pod = deployment(manifests)["spec"]["template"]["spec"]
    env = env_map(gateway_container(manifests))
    ref = {"secretKeyRef": {"name": "maas-credentials", "key": "api-key"}}
    assert env["MAAS_GATEWAY_MAAS_API_KEY"] == ref
    assert env["MAAS_GATEWAY_TOKENS_FILE"] == "/etc/maas-gateway/tokens/tokens"
    assert env["MAAS_GATEWAY_MAAS_CA_BUNDLE"] == "/etc/maas-gateway/ca/root.pem"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["gateway-tokens"]["secret"]["secretName"] == "maas-credentials"
    assert volumes["gateway-tokens"]["secret"]["items"] == [{"key": "tokens", "path": "tokens"}]
    assert volumes["ca-bundle"]["configMap"]["name"] == "corporate-ca"


def test_demo_mode_needs_no_secret(helm: Helm) -> None:
    manifests = helm.template()
    assert "Secret" not in kinds(manifests)
    assert "env" not in gateway_container(manifests)


def test_gateway_tokens_are_mounted_from_the_rendered_secret(helm: Helm) -> None:
    manifests = helm.template(CI["all-features"])
    [secret] = [m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"] == FULLNAME]
    assert set(secret["data"]) == {"maas-api-key", "gateway-tokens"}
    container = gateway_container(manifests)
    assert env_map(container)["MAAS_GATEWAY_TOKENS_FILE"] == (
        "/etc/maas-gateway/tokens/gateway-tokens"
    )
    ca_maps = [m for m in manifests if m["kind"] == "ConfigMap" and "ca.crt" in m["data"]]
    assert [m["metadata"]["name"] for m in ca_maps] == [f"{FULLNAME}-ca"]


def test_network_policy_allows_egress_only_to_maas_dns_and_the_extra_egress(helm: Helm) -> None:
    policy = only(helm.template(CI["all-features"]), "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {"matchLabels": SELECTOR}
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    dns, maas, extra = policy["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert maas == {
        "to": [{"ipBlock": {"cidr": "10.20.0.5/32"}}],
        "ports": [{"port": 5443, "protocol": "TCP"}],
    }
    # networkPolicy.extraEgress, as given, after the chart's own rules.
    assert extra == load_values(CI["all-features"])["networkPolicy"]["extraEgress"][0]
    [ingress] = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    allowed = [peer.get("namespaceSelector", peer.get("podSelector")) for peer in ingress["from"]]
    assert {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}} in allowed
    assert {
        "matchLabels": {
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": "helm-test",
        }
    } in allowed


def test_network_policy_in_demo_mode_allows_dns_only(helm: Helm) -> None:
    policy = only(helm.template(overrides={"networkPolicy": {"enabled": True}}), "NetworkPolicy")
    [dns] = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}


def test_image_reference_defaults_to_the_app_version_and_honours_a_digest(helm: Helm) -> None:
    assert gateway_container(helm.template())["image"] == f"maas-gateway:{CHART_META['appVersion']}"
    pinned = gateway_container(helm.template(CI["all-features"]))["image"]
    assert pinned == (
        "registry.example.internal:5000/maas-gateway:0.1.0@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )


def test_helm_test_pod_uses_the_gateway_image_and_is_never_a_service_endpoint(
    helm: Helm,
) -> None:
    manifests = helm.template(CI["all-features"])
    pod = only(manifests, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    labels = pod["metadata"]["labels"]
    assert not all(labels.get(key) == value for key, value in SELECTOR.items())
    [check] = pod["spec"]["containers"]
    assert check["image"] == gateway_container(manifests)["image"]
    assert check["securityContext"] == gateway_container(manifests)["securityContext"]
    assert (
        pod["spec"]["securityContext"]
        == deployment(manifests)["spec"]["template"]["spec"]["securityContext"]
    )
    script = check["command"][-1]
    assert "/readyz" in script and "__typename" in script
    compile(script, "helm-test", "exec")
    env = env_map(check)
    assert env["GATEWAY_URL"] == f"http://{FULLNAME}:80"
    assert env["GATEWAY_TOKEN"] == {
        "secretKeyRef": {"name": "maas-gateway-test-token", "key": "token"}
    }


def test_notes_warn_about_demo_mode_and_a_lone_replica_with_a_budget(helm: Helm) -> None:
    # helm template leaves NOTES.txt out; a client-side dry-run install renders it, no cluster.
    install = helm.run("install", RELEASE, str(CHART), "--dry-run=client", "-n", NAMESPACE)
    assert install.returncode == 0, install.stderr
    assert "DEMO MODE" in install.stdout
    lone = helm.run(
        "install",
        RELEASE,
        str(CHART),
        "--dry-run=client",
        "-n",
        NAMESPACE,
        "--set",
        "replicaCount=1",
        "-f",
        str(CI["existing-secret"]),
    )
    assert lone.returncode == 0, lone.stderr
    assert "DEMO MODE" not in lone.stdout
    assert "node drains will" in lone.stdout
    assert "rollout restart deployment/gw-maas-gateway" in lone.stdout


# --- extension points -------------------------------------------------------------------------


def _by_template(helm: Helm, values: Path) -> list[tuple[str, Manifest]]:
    """Each rendered object with the template it came from."""
    result = helm.template_result(values)
    assert result.returncode == 0, result.stderr
    found = []
    for text in re.split(r"(?m)^---$", result.stdout):
        source = re.search(r"^# Source: maas-gateway/(\S+)$", text, re.M)
        manifest = yaml.safe_load(text)
        if source and manifest:
            found.append((source.group(1), manifest))
    return found


def test_common_labels_are_on_every_object_the_chart_renders(helm: Helm) -> None:
    common = load_values(CI["all-features"])["commonLabels"]
    objects = _by_template(helm, CI["all-features"])
    own = [(source, m) for source, m in objects if source != "templates/extra-objects.yaml"]
    unlabelled = [
        f"{m['kind']} {m['metadata']['name']}"
        for _, m in own
        if not common.items() <= m["metadata"].get("labels", {}).items()
    ]
    templates = {p.relative_to(CHART).as_posix() for p in (CHART / "templates").rglob("*.yaml")}
    assert {source for source, _ in own} == templates - {"templates/extra-objects.yaml"}
    assert not unlabelled
    pod = deployment([m for _, m in own])["spec"]["template"]["metadata"]["labels"]
    assert common.items() <= pod.items()


def test_common_labels_never_replace_the_chart_labels(helm: Helm) -> None:
    overrides = {"commonLabels": {"app.kubernetes.io/name": "other", "team": "a"}}
    manifests = helm.template(overrides=overrides)
    labels = deployment(manifests)["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "maas-gateway"
    assert labels["team"] == "a"
    assert deployment(manifests)["spec"]["selector"] == {"matchLabels": SELECTOR}


def test_extra_objects_are_rendered_with_their_templates_expanded(helm: Helm) -> None:
    extra = [
        m for s, m in _by_template(helm, CI["all-features"]) if s.endswith("extra-objects.yaml")
    ]
    token, documents = extra
    assert token["kind"] == "Secret"
    assert token["metadata"]["namespace"] == NAMESPACE
    assert token["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert documents["metadata"]["name"] == f"{FULLNAME}-documents"
    assert documents["metadata"]["namespace"] == NAMESPACE


def test_extra_volumes_mounts_init_containers_and_sidecars_join_the_pod(helm: Helm) -> None:
    values = load_values(CI["all-features"])
    manifests = helm.template(CI["all-features"])
    pod = deployment(manifests)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["documents"]["configMap"]["name"] == f"{FULLNAME}-documents"
    assert {"tmp", "tls"} <= set(volumes)
    mounts = gateway_container(manifests)["volumeMounts"]
    assert values["extraVolumeMounts"][0] in mounts
    [init] = pod["initContainers"]
    assert init["image"] == gateway_container(manifests)["image"]  # templated
    assert [c["name"] for c in pod["containers"]] == ["gateway", "tls"]
    assert pod["containers"][1] == values["sidecars"][0]


def test_extension_points_are_empty_by_default(helm: Helm) -> None:
    manifests = helm.template()
    pod = deployment(manifests)["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["gateway"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert kinds(manifests) == kinds(helm.template(overrides={"extraObjects": []}))


def test_maas_key_as_a_file_is_mounted_read_only_and_kept_out_of_the_environment(
    helm: Helm,
) -> None:
    manifests = helm.template(overrides={**REAL_MAAS, "maasApiKeyFile": {"enabled": True}})
    container = gateway_container(manifests)
    env = env_map(container)
    assert "MAAS_GATEWAY_MAAS_API_KEY" not in env
    assert env["MAAS_GATEWAY_MAAS_API_KEY_FILE"] == "/etc/maas-gateway/maas/maas-api-key"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "maas-api-key")
    assert mount == {
        "name": "maas-api-key",
        "mountPath": "/etc/maas-gateway/maas",
        "readOnly": True,
    }
    volume = next(
        v
        for v in deployment(manifests)["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "maas-api-key"
    )
    assert volume["secret"]["secretName"] == FULLNAME
    assert volume["secret"]["items"] == [{"key": "maas-api-key", "path": "maas-api-key"}]
    assert volume["secret"]["defaultMode"] == 0o440


def test_maas_key_file_needs_no_mount_in_demo_mode(helm: Helm) -> None:
    manifests = helm.template(overrides={"maasApiKeyFile": {"enabled": True}})
    assert "env" not in gateway_container(manifests)
    assert [v["name"] for v in deployment(manifests)["spec"]["template"]["spec"]["volumes"]] == [
        "tmp"
    ]


# --- the chart's metadata and README ----------------------------------------------------------


def test_artifacthub_annotations_are_what_artifact_hub_reads(helm: Helm) -> None:
    annotations = CHART_META["annotations"]
    assert annotations["artifacthub.io/license"] == "Apache-2.0"
    [image] = yaml.safe_load(annotations["artifacthub.io/images"])
    # The image the chart deploys by default, so a release bumping appVersion must bump it too.
    assert image["image"] == gateway_container(helm.template())["image"]
    links = yaml.safe_load(annotations["artifacthub.io/links"])
    assert links and all(set(link) == {"name", "url"} for link in links)
    assert all(link["url"].startswith("https://") for link in links)
    changes = yaml.safe_load(annotations["artifacthub.io/changes"])
    kinds_allowed = {"added", "changed", "deprecated", "removed", "fixed", "security"}
    assert changes and all(change["kind"] in kinds_allowed for change in changes)
    assert all(change["description"] for change in changes)
    for flag in ("operator", "prerelease", "containsSecurityUpdates"):
        assert annotations[f"artifacthub.io/{flag}"] in {"true", "false"}


def test_chart_readme_parameters_are_generated_from_values(tmp_path: Path) -> None:
    """The README's tables are what readme-generator-for-helm makes of values.yaml now; it also
    fails when a value has no `## @param` line, or a line names no value."""
    generator = REPO / "helm" / "tools" / "node_modules" / ".bin" / "readme-generator"
    assert generator.is_file(), "run `make chart-tools` (make test does) first"
    readme = tmp_path / "README.md"
    shutil.copyfile(CHART / "README.md", readme)
    done = subprocess.run(
        [str(generator), "--values", str(CHART / "values.yaml"), "--readme", str(readme)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Metadata is correct" in done.stdout
    expected = readme.read_text(encoding="utf-8")
    assert (CHART / "README.md").read_text(encoding="utf-8") == expected, (
        "helm/maas-gateway/README.md is out of date: run `make chart-readme`"
    )
