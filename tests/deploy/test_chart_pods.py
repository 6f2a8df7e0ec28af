"""Every chart CI values file starts a gateway: `maas-gateway serve` runs with the environment and
the files the rendered chart gives the pod, against the simulator, and answers (#12 item 2: a
tokens file in the wrong format crashed the pod while rendering passed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth.tokens import token_line
from app.cli.server import BackgroundServer
from app.core.permissions import parse_permissions
from tests.conftest import ADMIN_KEY
from tests.deploy.conftest import CI_VALUES, Helm, Manifest, load_values, only
from tests.deploy.pods import Cluster, PodView, pod_view

CI = {path.name.removesuffix("-values.yaml"): path for path in CI_VALUES}
# The image's CMD, listening on loopback here: `maas-gateway serve --host 0.0.0.0 --port 8000`.
GATEWAY = Path(sys.executable).parent / "maas-gateway"
OPERATOR_TOKEN = "operator-made-token-for-chart-ci"


def operator_objects(values: str) -> list[Manifest]:
    """What the operator creates before installing with a values file: the objects it names
    and the chart does not render (an existing Secret, a CA ConfigMap, TLS for a sidecar)."""
    all_features = load_values(CI["all-features"])
    if values == "existing-secret":
        tokens = token_line(OPERATOR_TOKEN, "operator", parse_permissions("read"))
        return [
            _secret("maas-credentials", {"api-key": ADMIN_KEY, "tokens": tokens + "\n"}),
            _secret("maas-gateway-test-token", {"token": OPERATOR_TOKEN}),
            {
                "kind": "ConfigMap",
                "metadata": {"name": "corporate-ca"},
                "data": {"root.pem": all_features["caBundle"]["pem"]},
            },
        ]
    if values == "all-features":
        return [_secret("maas-gateway-tls", {"tls.crt": "", "tls.key": ""})]
    return []


def _secret(name: str, data: dict[str, str]) -> Manifest:
    return {"kind": "Secret", "metadata": {"name": name}, "stringData": data}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_ci_values_file_starts_a_gateway_that_answers(
    helm: Helm, values: Path, tmp_path: Path
) -> None:
    manifests = helm.template(values)
    cluster = Cluster(*manifests, *operator_objects(values.name.removesuffix("-values.yaml")))
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    view = pod_view(pod, "gateway", cluster, tmp_path / "pod")
    token = _helm_test_token(load_values(values), cluster)
    with _maas_for(view) as env, _serve(env, tmp_path) as url:
        assert httpx.get(f"{url}/livez", timeout=10).json() == {"status": "live"}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = _graphql(url, {"query": "{ bootResources { id } }"}, headers)
        assert answer["data"]["bootResources"], answer
        if token:
            refused = httpx.post(f"{url}/graphql", json={"query": "{ __typename }"}, timeout=10)
            assert refused.status_code == 401, "the tokens file the pod mounts is not in effect"
        _check_trusted_documents(view, url, headers)
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        _run_helm_test_pod(only(manifests, "Pod"), url, token)


def _helm_test_token(values: dict[str, Any], cluster: Cluster) -> str | None:
    """The plain token the values file names for `helm test` (helmTest.tokenSecret)."""
    reference = values.get("helmTest", {}).get("tokenSecret", {})
    if not reference.get("name"):
        return None
    return cluster.key("Secret", {"name": reference["name"], "key": reference.get("key", "token")})


@contextmanager
def _maas_for(view: PodView) -> Iterator[dict[str, str]]:
    """The pod's environment, its MAAS (unreachable from here) replaced by a simulator that
    knows the MAAS key the pod was given; demo mode starts its own simulator."""
    env = dict(view.env)
    if "MAAS_GATEWAY_MAAS_URL" not in env:
        yield env
        return
    from app.simulator import SimulatorConfig, create_simulator

    key = env.get("MAAS_GATEWAY_MAAS_API_KEY")
    if key is None:
        key = Path(env["MAAS_GATEWAY_MAAS_API_KEY_FILE"]).read_text(encoding="utf-8").strip()
    with BackgroundServer(create_simulator(SimulatorConfig(admin_key=key, seed=3))) as maas:
        env["MAAS_GATEWAY_MAAS_URL"] = f"{maas.url}/MAAS"
        yield env


@contextmanager
def _serve(pod_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Only what the pod has (and a PATH): none of this machine's MAAS_GATEWAY_* settings.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **pod_env}
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # our own command
            [str(GATEWAY), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,  # no .env file here
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_live(process, url, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_live(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 90  # a cold start on a busy machine
    while True:
        assert process.poll() is None, f"serve exited {process.returncode}:\n{log.read_text()}"
        try:
            if httpx.get(f"{url}/livez", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"serve never answered /livez:\n{log.read_text()}"
        time.sleep(0.05)


def _graphql(url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert "errors" not in answer, answer
    return answer


def _check_trusted_documents(view: PodView, url: str, headers: dict[str, str]) -> None:
    """A manifest the pod mounts (config.graphqlTrustedDocuments): its documents run by hash."""
    manifest = view.env.get("MAAS_GATEWAY_GRAPHQL_TRUSTED_DOCUMENTS")
    if manifest is None:
        return
    operations = json.loads(Path(manifest).read_text(encoding="utf-8"))["operations"]
    for operation in operations:
        persisted = {"persistedQuery": {"version": 1, "sha256Hash": operation["id"]}}
        answer = _graphql(url, {"extensions": persisted}, headers)
        assert answer["data"], answer


def _run_helm_test_pod(pod: Manifest, url: str, token: str | None) -> None:
    """The `helm test` pod's own check, run against this gateway."""
    [check] = pod["spec"]["containers"]
    assert check["command"][:2] == ["python", "-c"]
    env = {"PATH": os.environ["PATH"], "GATEWAY_URL": url}
    if token:
        env["GATEWAY_TOKEN"] = token
    done = subprocess.run(
        [sys.executable, "-c", check["command"][2]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
