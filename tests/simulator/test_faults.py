"""Fault knobs: latency, error statuses, hangs, dropped connections, malformed JSON."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import httpx
import pytest

from app.cli.server import BackgroundServer
from app.simulator import FaultRule, SimulatorConfig, create_simulator

from .helpers import Maas, control


def _faults(simulator: BackgroundServer, *rules: dict[str, Any]) -> httpx.Response:
    response = control(simulator.url, "PUT", "faults", {"rules": list(rules)})
    response.raise_for_status()
    return response


def test_global_latency_delays_maas_requests(admin: Maas, simulator: BackgroundServer) -> None:
    control(simulator.url, "PUT", "config", {"latency_ms": 150}).raise_for_status()

    started = time.perf_counter()
    admin.get("version/")
    elapsed = time.perf_counter() - started

    assert elapsed >= 0.15


def test_global_jitter_adds_a_random_delay(admin: Maas, simulator: BackgroundServer) -> None:
    control(simulator.url, "PUT", "config", {"jitter_ms": 100}).raise_for_status()

    delays = []
    for _ in range(6):
        started = time.perf_counter()
        admin.get("version/")
        delays.append(time.perf_counter() - started)

    assert max(delays) > 0.01
    assert max(delays) < 0.5


def test_rule_latency_applies_only_to_matching_paths(
    admin: Maas, simulator: BackgroundServer
) -> None:
    _faults(simulator, {"path": "boot-sources", "latency_ms": 200})

    started = time.perf_counter()
    admin.get("boot-resources/")
    fast = time.perf_counter() - started
    started = time.perf_counter()
    admin.get("boot-sources/")
    slow = time.perf_counter() - started

    assert fast < 0.15
    assert slow >= 0.2


@pytest.mark.parametrize(
    ("status", "content_type", "body", "retry_after"),
    [
        (500, "text/plain; charset=utf-8", "sorry, too many clients already", None),
        (503, "text/plain; charset=utf-8", "Unable to connect to any rack controller", "10"),
        (409, "text/html; charset=utf-8", "Conflict error. Try your request again", "5"),
        (502, "text/html", "502 Bad Gateway", None),
    ],
)
def test_status_fault_answers_like_maas(
    admin: Maas,
    simulator: BackgroundServer,
    status: int,
    content_type: str,
    body: str,
    retry_after: str | None,
) -> None:
    _faults(simulator, {"path": "^/MAAS/api/2.0/boot-resources/$", "status": status})

    response = admin.get("boot-resources/")

    assert response.status_code == status
    assert response.headers["content-type"] == content_type
    assert body in response.text
    assert response.headers.get("retry-after") == retry_after


def test_status_fault_body_can_be_set(admin: Maas, simulator: BackgroundServer) -> None:
    _faults(simulator, {"status": 500, "body": "database is locked"})

    assert admin.get("boot-resources/").text == "database is locked"


def test_fault_with_times_expires(admin: Maas, simulator: BackgroundServer) -> None:
    _faults(simulator, {"path": "boot-resources", "status": 503, "times": 2})

    statuses = [admin.get("boot-resources/").status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert control(simulator.url, "GET", "faults").json() == {"rules": []}


def test_fault_method_filter(admin: Maas, simulator: BackgroundServer) -> None:
    _faults(simulator, {"path": "boot-resources", "method": "post", "status": 500})

    assert admin.get("boot-resources/").status_code == 200
    assert admin.post("boot-resources/", params={"op": "import"}).status_code == 500


def test_fault_rate_uses_the_seeded_rng(admin: Maas, simulator: BackgroundServer) -> None:
    _faults(simulator, {"path": "version", "status": 500, "rate": 0.5})
    first = [admin.get("version/").status_code for _ in range(30)]
    control(simulator.url, "POST", "reset")
    _faults(simulator, {"path": "version", "status": 500, "rate": 0.5})
    second = [admin.get("version/").status_code for _ in range(30)]

    assert first == second
    assert 0 < first.count(500) < 30


def test_rate_zero_never_fires(admin: Maas, simulator: BackgroundServer) -> None:
    _faults(simulator, {"status": 500, "rate": 0.0})

    assert {admin.get("version/").status_code for _ in range(10)} == {200}


def test_hang_holds_until_the_client_gives_up(simulator: BackgroundServer) -> None:
    _faults(simulator, {"path": "version", "hang": True})

    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{simulator.url}/MAAS/api/2.0/version/", timeout=0.3, verify=False)

    assert time.perf_counter() - started >= 0.3
    # The hung request does not block the rest of the server.
    assert httpx.get(f"{simulator.url}/MAAS/api/2.0/describe/", verify=False).status_code == 200


def test_reset_releases_a_hung_request(simulator: BackgroundServer) -> None:
    _faults(simulator, {"path": "version", "hang": True})

    with httpx.Client(verify=False, timeout=5.0) as client:
        result: dict[str, Any] = {}

        def call() -> None:
            result["response"] = client.get(f"{simulator.url}/MAAS/api/2.0/version/")

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.2)
        control(simulator.url, "POST", "reset")
        thread.join(5.0)

    assert result["response"].status_code == 504


def test_drop_closes_the_connection_without_a_response(
    admin: Maas, simulator: BackgroundServer
) -> None:
    _faults(simulator, {"path": "boot-resources", "drop": True, "times": 1})

    with pytest.raises(httpx.RemoteProtocolError):
        admin.get("boot-resources/")
    assert admin.get("boot-resources/").status_code == 200


def test_drop_after_bytes_cuts_an_upload_mid_body(admin: Maas, simulator: BackgroundServer) -> None:
    content = os.urandom(2 * 1024 * 1024)
    created = admin.post(
        "boot-resources/",
        fields=[
            ("name", "dropped-upload"),
            ("architecture", "amd64/generic"),
            ("size", str(len(content))),
            ("sha256", "9" * 64),
        ],
    ).json()
    (rfile,) = created["sets"][max(created["sets"])]["files"].values()
    _faults(simulator, {"path": "/upload/", "method": "PUT", "drop_after_bytes": 65536, "times": 1})

    with pytest.raises(httpx.TransportError):
        admin.upload(rfile["upload_uri"], content)

    after = admin.get(f"boot-resources/{created['id']}/").json()
    (stored,) = after["sets"][max(after["sets"])]["files"].values()
    assert stored["progress"] == 0.0


def test_malformed_answers_200_json_that_does_not_parse(
    admin: Maas, simulator: BackgroundServer
) -> None:
    _faults(simulator, {"path": "boot-resources", "malformed": True})

    response = admin.get("boot-resources/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_drip_sends_prompt_headers_then_the_body_a_few_bytes_at_a_time(
    simulator: BackgroundServer, admin: Maas
) -> None:
    expected = admin.get("version/").content
    _faults(simulator, {"path": "version", "drip_ms": 20})

    started = time.perf_counter()
    with httpx.stream("GET", f"{simulator.url}/MAAS/api/2.0/version/") as response:
        headers_after = time.perf_counter() - started
        pieces = list(response.iter_raw())
    elapsed = time.perf_counter() - started

    assert response.status_code == 200
    assert headers_after < 0.5
    assert b"".join(pieces) == expected
    assert len(pieces) > 1
    assert elapsed >= 0.02 * (len(expected) // 16)


def test_a_non_positive_drip_is_refused(simulator: BackgroundServer) -> None:
    response = control(simulator.url, "PUT", "faults", {"rules": [{"drip_ms": 0}]})

    assert response.status_code == 400


def test_faults_can_be_listed_appended_and_cleared(simulator: BackgroundServer) -> None:
    _faults(simulator, {"path": "a", "status": 500})
    control(simulator.url, "POST", "faults", {"path": "b", "latency_ms": 5})

    listed = control(simulator.url, "GET", "faults").json()["rules"]
    cleared = control(simulator.url, "DELETE", "faults")

    assert [(r["path"], r["status"], r["latency_ms"]) for r in listed] == [
        ("a", 500, 0.0),
        ("b", None, 5),
    ]
    assert cleared.status_code == 204
    assert control(simulator.url, "GET", "faults").json() == {"rules": []}


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "("},
        {"status": 99},
        {"rate": 2},
        {"hang": "yes"},
        {"times": -1},
        {"nonsense": 1},
    ],
)
def test_invalid_fault_rules_are_refused(simulator: BackgroundServer, rule: dict[str, Any]) -> None:
    response = control(simulator.url, "PUT", "faults", {"rules": [rule]})

    assert response.status_code == 400
    assert "error" in response.json()


def test_faults_from_the_config_apply_from_the_start_and_after_reset() -> None:
    config = SimulatorConfig(faults=(FaultRule(path="version", status=503, times=1),))
    with BackgroundServer(create_simulator(config)) as server:
        url = f"{server.url}/MAAS/api/2.0/version/"
        first = httpx.get(url, verify=False).status_code
        second = httpx.get(url, verify=False).status_code
        control(server.url, "POST", "reset")
        third = httpx.get(url, verify=False).status_code

    assert (first, second, third) == (503, 200, 503)
