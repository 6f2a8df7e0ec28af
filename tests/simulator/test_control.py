"""The /_simulator/ control plane: request counts, reset, runtime config, info; the config."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from app.cli.server import BackgroundServer
from app.simulator import SimulatorConfig, create_simulator

from .helpers import Maas, control, keys, oauth_header

KEY = re.compile(r"^[A-Za-z0-9]{18}:[A-Za-z0-9]{18}:[A-Za-z0-9]{32}$")


def test_requests_are_counted_by_method_and_path_without_query(
    admin: Maas, simulator: BackgroundServer
) -> None:
    admin.get("boot-resources/")
    admin.get("boot-resources/", params={"type": "synced"})
    admin.get("boot-resources/1/")
    admin.post("boot-resources/", params={"op": "import"})
    control(simulator.url, "GET", "faults")

    counts = control(simulator.url, "GET", "requests").json()

    assert counts == {
        "total": 4,
        "counts": {
            "GET /MAAS/api/2.0/boot-resources/": 2,
            "GET /MAAS/api/2.0/boot-resources/1/": 1,
            "POST /MAAS/api/2.0/boot-resources/": 1,
        },
    }


def test_failed_and_faulted_requests_count_too(anon: Maas, simulator: BackgroundServer) -> None:
    control(simulator.url, "PUT", "faults", {"rules": [{"path": "version", "status": 500}]})
    anon.get("boot-resources/")
    anon.get("version/")

    counts = control(simulator.url, "GET", "requests").json()["counts"]

    assert counts == {
        "GET /MAAS/api/2.0/boot-resources/": 1,
        "GET /MAAS/api/2.0/version/": 1,
    }


def test_delete_requests_resets_the_counts(admin: Maas, simulator: BackgroundServer) -> None:
    admin.get("boot-resources/")

    assert control(simulator.url, "DELETE", "requests").status_code == 204
    assert control(simulator.url, "GET", "requests").json() == {"total": 0, "counts": {}}


def test_reset_restores_state_config_faults_and_counters(
    admin: Maas, simulator: BackgroundServer
) -> None:
    before = admin.get("boot-resources/").json()
    admin.delete(f"boot-resources/{before[-1]['id']}/")
    control(simulator.url, "PUT", "config", {"latency_ms": 5})
    control(simulator.url, "PUT", "faults", {"rules": [{"path": "nothing", "status": 500}]})

    assert control(simulator.url, "POST", "reset").json() == {"status": "reset"}

    assert control(simulator.url, "GET", "requests").json() == {"total": 0, "counts": {}}
    assert control(simulator.url, "GET", "faults").json() == {"rules": []}
    assert control(simulator.url, "GET", "config").json()["latency_ms"] == 0.0
    assert admin.get("boot-resources/").json() == before


def test_reset_forgets_used_nonces(simulator: BackgroundServer) -> None:
    header = oauth_header(keys(simulator.url)[0], nonce="same-nonce")
    client = Maas(simulator.url, None)
    try:
        first = client.get("boot-resources/", headers={"Authorization": header})
        control(simulator.url, "POST", "reset")
        second = client.get("boot-resources/", headers={"Authorization": header})
    finally:
        client.close()

    assert (first.status_code, second.status_code) == (200, 200)


def test_reset_is_fast(simulator: BackgroundServer) -> None:
    started = time.perf_counter()
    for _ in range(20):
        control(simulator.url, "POST", "reset")

    assert (time.perf_counter() - started) / 20 < 0.05


def test_config_can_be_read_and_changed(simulator: BackgroundServer) -> None:
    assert control(simulator.url, "GET", "config").json() == {
        "latency_ms": 0.0,
        "jitter_ms": 0.0,
        "import_duration_s": 1.0,
    }

    changed = control(simulator.url, "PUT", "config", {"jitter_ms": 3, "import_duration_s": 0.5})

    assert changed.json() == {"latency_ms": 0.0, "jitter_ms": 3.0, "import_duration_s": 0.5}


@pytest.mark.parametrize(
    "payload", [{"latency_ms": -1}, {"latency_ms": "fast"}, {"speed": 1}, [1, 2]]
)
def test_config_rejects_bad_values(simulator: BackgroundServer, payload: Any) -> None:
    response = control(simulator.url, "PUT", "config", payload)

    assert response.status_code == 400


def test_unknown_control_endpoint_and_method(simulator: BackgroundServer) -> None:
    assert control(simulator.url, "GET", "nope").status_code == 404
    wrong = control(simulator.url, "GET", "reset")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"


def test_info_reports_the_keys_and_version(simulator: BackgroundServer) -> None:
    info = control(simulator.url, "GET", "info").json()

    assert info["maas_version"] == "3.5"
    assert info["admin_key"] == (
        "AdminConsumerKey01:AdminTokenKey00001:AdminTokenSecret0000000000000001"
    )
    assert info["api_url"] == "/MAAS/api/2.0/"


def test_default_keys_are_deterministic_maas_shaped_and_distinct() -> None:
    admin_key, user_key = SimulatorConfig.default_keys(42)

    assert SimulatorConfig.default_keys(42) == (admin_key, user_key)
    assert SimulatorConfig.default_keys(43) != (admin_key, user_key)
    assert KEY.match(admin_key)
    assert KEY.match(user_key)
    assert admin_key != user_key
    config = SimulatorConfig(seed=42)
    assert config.resolved_admin_key() == admin_key
    assert config.resolved_user_key() == user_key


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"maas_version": "4.0"}, "is not supported"),
        ({"maas_version": "three"}, "must look like"),
        ({"latency_ms": -1.0}, "must not be negative"),
        ({"admin_key": "only:two"}, "consumer_key:token_key:token_secret"),
        ({"admin_key": "a:b:c", "user_key": "a:d:e"}, "different consumer and token keys"),
        ({"extra_resources": -1}, "must not be negative"),
    ],
)
def test_config_validates_its_fields(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(**fields)


def test_same_seed_gives_the_same_state() -> None:
    first = create_simulator(SimulatorConfig(seed=5, extra_resources=3))
    second = create_simulator(SimulatorConfig(seed=5, extra_resources=3))

    def summary(simulator: Any) -> list[tuple[Any, ...]]:
        return [
            (
                r.id,
                r.name,
                r.architecture,
                [(s.version, [f.sha256 for f in s.files]) for s in r.sets],
            )
            for r in simulator.state.resources.values()
        ]

    assert summary(first) == summary(second)
    assert (
        len(first.state.resources)
        == len(create_simulator(SimulatorConfig(seed=5)).state.resources) + 3
    )
