"""The `maas-gateway` command as operators run it: demo mode, simulate, settings errors, export."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings, running_gateway

CLI = [sys.executable, "-m", "app.cli"]
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAAS_GATEWAY_")}
    env.update(extra)
    return env


@contextmanager
def running(args: list[str], env: dict[str, str], ready: str) -> Iterator[list[str]]:
    with subprocess.Popen(
        [*CLI, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        lines: list[str] = []
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if ready in line:
                    break
            assert any(ready in line for line in lines), "".join(lines)
            yield lines
        finally:
            process.terminate()
            process.wait(timeout=15)


def wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + 90  # a bound for a stuck start, not a speed: CI may be busy
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.1)


def test_serve_without_maas_url_starts_the_simulator_and_prints_urls() -> None:
    port = free_port()
    with running(["serve", "--port", str(port)], clean_env(), "GraphiQL:") as lines:
        output = "".join(lines)
        assert "MAAS simulator: http://127.0.0.1:" in output
        assert "Simulator admin API key: " in output
        assert f"GraphiQL: http://127.0.0.1:{port}/graphql" in output
        wait_until_serving(f"http://127.0.0.1:{port}/graphql")
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ bootSources { url } }"},
            timeout=10,
        )
        assert "images.maas.io" in response.text


def test_demo_mode_logs_cleanly_from_start_to_stop() -> None:
    # The embedded simulator's server once reconfigured logging and closed the gateway's
    # log handler, so every later line failed with "write to closed file".
    port = free_port()
    with subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=REPO,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/graphql")
            httpx.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": "{ bootSources { url } }"},
                timeout=10,
            )
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=30)
    assert "Logging error" not in output
    assert "Traceback" not in output
    assert '"logger":"app.access"' in output
    assert "Application shutdown complete." in output


def test_malformed_setting_stops_start_up_with_one_clear_line() -> None:
    secretish = "not-a-key-with-secret-bits"
    result = subprocess.run(
        [*CLI, "serve"],
        cwd=REPO,
        env=clean_env(
            MAAS_GATEWAY_MAAS_URL="http://maas.example.com:5240/MAAS",
            MAAS_GATEWAY_MAAS_API_KEY=secretish,
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "maas-gateway: invalid setting MAAS_GATEWAY_MAAS_API_KEY: must be three non-empty "
        "parts: consumer_key:token_key:token_secret"
    ]
    assert "Traceback" not in result.stderr + result.stdout
    assert secretish not in result.stderr + result.stdout


def test_an_unreadable_maas_key_file_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "secrets" / "maas-api-key"
    result = subprocess.run(
        [*CLI, "serve"],
        cwd=REPO,
        env=clean_env(
            MAAS_GATEWAY_MAAS_URL="http://maas.example.com:5240/MAAS",
            MAAS_GATEWAY_MAAS_API_KEY_FILE=str(missing),
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"maas-gateway: invalid setting MAAS_GATEWAY_MAAS_API_KEY_FILE: cannot read {missing}: "
        "No such file or directory"
    ]


def test_every_malformed_setting_is_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "serve"],
        cwd=tmp_path,
        env=clean_env(MAAS_GATEWAY_MAAS_TIMEOUT="soon", MAAS_GATEWAY_MAAS_URL="ftp://x"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("MAAS_GATEWAY_MAAS_TIMEOUT" in line for line in lines)
    assert any(
        "MAAS_GATEWAY_MAAS_URL: must start with http:// or https://" in line for line in lines
    )


def test_settings_come_from_a_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MAAS_GATEWAY_MAAS_API_KEY=a:b\n")
    result = subprocess.run(
        [*CLI, "serve"],
        cwd=tmp_path,
        env={**clean_env(), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "MAAS_GATEWAY_MAAS_API_KEY" in result.stderr


def test_simulate_serves_maas_with_the_given_keys() -> None:
    port = free_port()
    args = ["simulate", "--port", str(port), "--admin-key", ADMIN_KEY, "--latency-ms", "1"]
    with running(args, clean_env(), "Control:") as lines:
        output = "".join(lines)
        assert f"Admin API key: {ADMIN_KEY}" in output
        wait_until_serving(f"http://127.0.0.1:{port}/MAAS/api/2.0/version/")
        describe = httpx.get(f"http://127.0.0.1:{port}/MAAS/api/2.0/describe/", timeout=5)
        assert describe.headers["content-type"] == "application/json"
        assert "BootResourcesHandler" in describe.text


def test_simulate_rejects_a_malformed_key() -> None:
    result = subprocess.run(
        [*CLI, "simulate", "--admin-key", "oops"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("maas-gateway: invalid simulator option")


def test_committed_contracts_match_the_app() -> None:
    result = subprocess.run(
        [*CLI, "export", "--check"], cwd=REPO, env=clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_export_reports_a_breaking_graphql_change(tmp_path: Path) -> None:
    (tmp_path / "schema.graphql").write_text(
        "type Query { bootResources: [Int!]! removedField: String }\n"
    )
    result = subprocess.run(
        [*CLI, "export", "--directory", str(tmp_path), "--docs-directory", str(tmp_path)],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "breaking GraphQL change: Field Query.removedField was removed." in result.stderr
    assert (tmp_path / "openapi.json").exists()
    check = subprocess.run(
        [
            *CLI,
            "export",
            "--directory",
            str(tmp_path),
            "--docs-directory",
            str(tmp_path),
            "--check",
        ],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_upload_streams_a_file_through_the_gateway(
    simulator: BackgroundServer, tmp_path: Path
) -> None:
    image = tmp_path / "root.tgz"
    image.write_bytes(os.urandom(300 * 1024))
    settings = gateway_settings(simulator.url, ADMIN_KEY, upload_chunk_size=64 * 1024)
    with running_gateway(settings) as gateway:
        result = subprocess.run(
            [
                *CLI,
                "upload",
                str(image),
                "--name",
                "custom/cli-image",
                "--architecture",
                "amd64/generic",
                "--gateway",
                gateway.url,
            ],
            cwd=REPO,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "uploaded boot resource" in result.stdout
        assert "sha256 root.tgz: 100%" in result.stderr  # a bar for the hashing
        assert "upload root.tgz: 100%" in result.stderr and "B/s" in result.stderr
        failed = subprocess.run(
            [
                *CLI,
                "upload",
                str(image),
                "--name",
                "custom/cli-image",
                "--quiet",
                "--architecture",
                "sparc/none",
                "--gateway",
                gateway.url,
            ],
            cwd=REPO,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert failed.returncode == 2
    assert failed.stderr.startswith("maas-gateway: upload failed: HTTP 400 VALIDATION")


def test_upload_of_a_missing_file_fails_clearly(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "upload", str(tmp_path / "nope.tgz"), "--name", "x", "--architecture", "a/b"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith("nope.tgz: no such file")
