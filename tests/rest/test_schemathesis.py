"""Property-based fuzzing with schemathesis: the REST API against its OpenAPI document and the
GraphQL endpoint against its schema, bounded and derandomized; then the REST API stateful,
following the document's links from a random seed each run. No 5xx, and every REST answer
matches the documented status codes, content types and schemas."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import BaseSchema, Case, CheckContext, Response
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err
from schemathesis.graphql import nodes

from app.cli.server import BackgroundServer
from app.simulator import SimulatorConfig, create_simulator
from tests.conftest import ADMIN_KEY, USER_KEY
from tests.gateway import gateway_settings, running_gateway, write_tokens

FUZZ = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
)
"""About 400 REST cases (20 operations) and 400 GraphQL cases (20 root fields)."""


@pytest.fixture
def gateway_url(simulator: BackgroundServer) -> Iterator[str]:
    settings = gateway_settings(simulator.url, ADMIN_KEY, max_upload_bytes=1024 * 1024)
    with running_gateway(settings) as gateway:
        yield gateway.url


@pytest.fixture
def rest_schema(gateway_url: str) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")


@pytest.fixture
def graphql_schema(gateway_url: str) -> BaseSchema:
    # Files come as multipart parts, which schemathesis does not send: a string stands in, and
    # the gateway must refuse it as a client error.
    schemathesis.graphql.scalar("Upload", st.just(nodes.String("not a file")))
    return schemathesis.graphql.from_url(f"{gateway_url}/graphql")


CheckFunction = Callable[..., Any]
SERVER_SIDE = {"INTERNAL", "UPSTREAM_BAD_RESPONSE", "UPSTREAM_UNAVAILABLE", "UPSTREAM_TIMEOUT"}
"""Gateway error codes that mean the gateway or MAAS failed; the simulator is healthy here, so
one of these would be the gateway sending MAAS something it cannot take, or a bug."""


def no_graphql_server_error(ctx: CheckContext, response: Response, case: Case[Any]) -> None:
    """schemathesis's own check takes every resolver error for a server error unless it bears
    an Apollo code; the gateway's codes (VALIDATION, NOT_FOUND, ...) say which side failed."""
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        return  # a transport-level refusal (400 malformed, 413 too large)
    body = response.json()
    assert isinstance(body, dict) and ("data" in body or "errors" in body), body
    codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors") or []}
    assert None not in codes, body
    assert not codes & SERVER_SIDE, body


REST_CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(schema: BaseSchema, checks: list[CheckFunction]) -> tuple[int, int, list[str]]:
    """Every operation of `schema` with FUZZ's budget: operations, cases sent, failures.
    (schemathesis's pytest plugin needs a pytest it does not support yet, so this drives it.)"""
    failures: list[str] = []
    operations = cases = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the schema does not load: {result.err()}")
            continue
        operation = result.ok()
        operations += 1

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: Case[Any]) -> None:
            nonlocal cases
            cases += 1
            # The document's bearer scheme makes schemathesis invent credentials, which are
            # refused (401) before the body is read: the gateway's callers here need none.
            if case.headers:
                case.headers.pop("Authorization", None)
            if case.path.endswith("/ready") and case.query is not None:
                case.query["wait"] = 0  # a long poll of up to 60 s answers, just later
            case.call_and_validate(checks=checks, timeout=30)

        try:
            run()
        except Exception as exc:  # a check's failure, reported with its operation
            failures.append(f"{operation.label}: {exc}"[:2000])
    return operations, cases, failures


def test_rest_answers_fuzzed_requests_as_documented(rest_schema: BaseSchema) -> None:
    operations, cases, failures = fuzz(rest_schema, REST_CHECKS)
    assert operations >= 20 and cases >= 10 * operations
    assert not failures, "\n\n".join(failures)


def test_graphql_answers_fuzzed_operations_without_a_server_error(
    graphql_schema: BaseSchema,
) -> None:
    operations, cases, failures = fuzz(graphql_schema, [no_graphql_server_error])
    assert operations >= 15 and cases >= 10 * operations
    assert not failures, "\n\n".join(failures)


STATEFUL_CONFIG = Path(__file__).parent / "schemathesis-stateful.toml"
STATEFUL_CHECKS = [
    *("not_a_server_error", "status_code_conformance", "content_type_conformance"),
    *("response_headers_conformance", "response_schema_conformance"),
    # A created object can be read at once; a deleted one is gone (404), never served stale.
    *("ensure_resource_availability", "use_after_free"),
]
STATEFUL_CASES = 300
"""Runs go on, each from the next seed, until this many cases were sent..."""
STATEFUL_RUNS = 3
"""...or this many runs: about 300 to 1,000 cases, well under a minute on 2 cores."""
SEED_VARIABLE = "MAAS_GATEWAY_FUZZ_SEED"


@pytest.fixture
def stateful_gateway(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A gateway with a token, as in production, before a MAAS 3.8 simulator of its own (its
    boot-source fields are in the document, and earlier MAAS refuse them); URL and token."""
    config = SimulatorConfig(
        admin_key=ADMIN_KEY, user_key=USER_KEY, seed=1, import_duration_s=1.0, maas_version="3.8"
    )
    tokens = tmp_path / "tokens"
    token = write_tokens(tokens, fuzz="read,write")["fuzz"]
    with BackgroundServer(create_simulator(config)) as simulator:
        settings = gateway_settings(
            simulator.url, ADMIN_KEY, max_upload_bytes=1024 * 1024, tokens_file=str(tokens)
        )
        with running_gateway(settings) as gateway:
            yield gateway.url, token


def run_stateful(url: str, token: str, run_seed: int, directory: Path) -> tuple[int, int]:
    """One `schemathesis run` of the stateful phase: the cases it sent and the links it
    followed. A finding fails the test with the run's report and the seed that replays it."""
    report = directory / f"stateful-{run_seed}.json"
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(STATEFUL_CONFIG)]
    command += ["run", f"{url}/openapi.json", "-H", f"Authorization: Bearer {token}"]
    command += ["--phases", "stateful", "--checks", ",".join(STATEFUL_CHECKS), "--workers", "1"]
    command += ["--seed", str(run_seed), "--report", "json", "--report-json-path", str(report)]
    done = subprocess.run(
        command,
        cwd=directory,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{SEED_VARIABLE}={run_seed} replays this:\n{done.stdout}"
    links = re.search(r"API Links:\s+(\d+) covered", done.stdout)
    assert links is not None, done.stdout
    cases: int = json.loads(report.read_text())["test_cases"]["generated"]
    return cases, int(links[1])


def test_rest_answers_linked_operations_as_documented(
    stateful_gateway: tuple[str, str], tmp_path: Path
) -> None:
    url, token = stateful_gateway
    chosen = os.environ.get(SEED_VARIABLE)
    first = int(chosen) if chosen else secrets.randbelow(2**31)
    print(f"stateful runs from seed {first}: replay with {SEED_VARIABLE}={first}")
    cases = links = 0
    for run_seed in range(first, first + STATEFUL_RUNS):
        sent, followed = run_stateful(url, token, run_seed, tmp_path)
        cases, links = cases + sent, links + followed
        if cases >= STATEFUL_CASES:
            break
    print(f"stateful: {cases} cases, {links} links followed")
    assert cases >= 100 and links >= 5, (cases, links)
