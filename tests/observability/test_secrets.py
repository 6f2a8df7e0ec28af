"""No secret ever shows: a real `maas-gateway serve` is driven through every kind of failure,
and its logs, answers, metrics and settings are searched for keys, tokens and keyrings."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.cli.server import BackgroundServer, bind_socket
from app.core.settings import Settings, parse_api_key
from tests.conftest import ADMIN_KEY, USER_KEY
from tests.gateway import bearer, set_faults, write_tokens

KEYRING = b"-----BEGIN PGP PUBLIC KEY BLOCK----- keyring-" + secrets.token_hex(16).encode()
KEYRING_B64 = base64.b64encode(KEYRING).decode()
CREATE_SOURCE = """mutation($input: CreateBootSourceInput!) {
  createBootSource(input: $input) { bootSource { id } errors { code field message } } }"""


class Transcript:
    """Everything a run showed to anyone: answers (with headers), and the process's output."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def keep(self, response: httpx.Response) -> httpx.Response:
        self.parts.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def text(self) -> str:
        return "\n".join(self.parts)


def secrets_of(*keys: str) -> list[str]:
    """A key and each of its parts: any of them alone would be a leak."""
    found = []
    for key in keys:
        found.append(key)
        found.extend(parse_api_key(key))
    return found


def leaks(text: str, secret_values: list[str]) -> list[str]:
    """Where each secret shows, with the secret itself masked in the report."""
    found = []
    for secret in secret_values:
        start = text.find(secret)
        while start != -1:
            context = text[max(0, start - 80) : start + len(secret) + 40]
            found.append(context.replace(secret, f"<{secret[:4]}…>"))
            start = text.find(secret, start + 1)
    return found


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[str]:
    sock = bind_socket()
    port = sock.getsockname()[1]
    sock.close()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAAS_GATEWAY_")}
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env={**clean, "MAAS_GATEWAY_LOG_LEVEL": "debug", **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/openapi.json", timeout=2)
                    break
                except httpx.TransportError:
                    assert process.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, "the gateway did not start"
                    time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


def ws_attempt(base: str, payload: dict[str, object], transcript: Transcript) -> None:
    """Sign a websocket in and subscribe: refused at sign-in (service mode), or (passthrough
    mode, where only MAAS can judge a well-formed key) when the subscription reaches MAAS."""
    url = base.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            ack = ws.recv(timeout=10)
        except ConnectionClosed as closed:
            transcript.parts.append(f"ws closed {closed.rcvd}")
            return
        transcript.parts.append(str(ack))
        query = {"query": "subscription { importProgress { importing } }"}
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
        answer = str(ws.recv(timeout=10))
        transcript.parts.append(answer)
        assert "UNAUTHENTICATED" in answer


def fault_bodies(key: str) -> list[dict[str, object]]:
    """MAAS (or a proxy before it) answering with the credential in its words."""
    consumer, token, secret = parse_api_key(key)
    return [
        {"status": 401, "body": f"Authorization Error: 'Invalid access token: {token}'"},
        {"status": 401, "body": f"Authorization Error: Invalid API key. {consumer}"},
        {"status": 403, "body": f"User {consumer} ({secret}) is not allowed access to this API."},
        {"status": 500, "body": f"Traceback: OAuth header oauth_signature=&{secret} key={key}"},
        {"status": 400, "body": json.dumps({"url": [f"bad {key}"], "__all__": [secret]})},
        {"status": 503, "body": f"upstream {token} down"},
        {"drop": True},
        {"malformed": True},
    ]


def drive_failures(base: str, simulator: str, transcript: Transcript, credential: str) -> None:
    """Requests that fail in every way the gateway knows, made with `credential` when one is
    needed to get as far as MAAS. MAAS's failures quote the key that signed the call (the
    gateway's own, or in passthrough mode the caller's): the one key the gateway can know."""
    keep = transcript.keep
    good = bearer(credential)
    api = f"{base}/api/v1"
    for wrong in ("mgw_" + secrets.token_urlsafe(32), "Wrong" + secrets.token_hex(20), "x:y:z"):
        keep(httpx.get(f"{api}/boot-resources", headers=bearer(wrong)))
        keep(
            httpx.post(
                f"{base}/graphql", json={"query": "{ bootSources { id } }"}, headers=bearer(wrong)
            )
        )
        keep(httpx.get(f"{api}/boot-sources", headers={"Authorization": f"Token {wrong}"}))
        ws_attempt(base, {"Authorization": f"Bearer {wrong}"}, transcript)
    keep(httpx.get(f"{api}/boot-resources"))
    for fault in fault_bodies(ADMIN_KEY):
        set_faults(simulator, {"path": r"/boot-(sources|resources)/", **fault})
        keep(httpx.get(f"{api}/boot-sources", headers=good, params={"n": secrets.token_hex(4)}))
        keep(
            httpx.post(
                f"{base}/graphql",
                json={"query": "{ bootResources { id sets { version } } }"},
                headers=good,
            )
        )
        keep(httpx.post(f"{api}/boot-resources/import", headers=good))
    set_faults(simulator)
    # Keyring data in requests that fail: MAAS's validation, the gateway's, GraphQL's.
    bad_source = {"url": "not a url", "keyring_data": KEYRING_B64}
    keep(httpx.post(f"{api}/boot-sources", json=bad_source, headers=good))
    keep(
        httpx.post(
            f"{api}/boot-sources", json={**bad_source, "keyring_filename": "/k"}, headers=good
        )
    )
    keep(
        httpx.post(
            f"{api}/boot-sources", json={"url": 5, "keyring_data": KEYRING_B64}, headers=good
        )
    )
    keep(httpx.put(f"{api}/boot-sources/999", json=bad_source, headers=good))
    for variables in (
        {"input": {"url": "not a url", "keyringData": KEYRING_B64}},
        {"input": {"keyringData": KEYRING_B64}},
        {"input": {"url": 5, "keyringData": KEYRING_B64}},
        {"input": {"url": "http://x/", "keyringData": [KEYRING_B64]}},
        {"input": {"url": "http://x/", "keyringData": KEYRING_B64 + "!!"}},
    ):
        keep(
            httpx.post(
                f"{base}/graphql",
                json={"query": CREATE_SOURCE, "variables": variables},
                headers=good,
            )
        )
    literal = CREATE_SOURCE.replace("$input: CreateBootSourceInput!", "").replace(
        "input: $input", f'input: {{url: 5, keyringData: "{KEYRING_B64}"}}'
    )
    keep(
        httpx.post(
            f"{base}/graphql",
            json={"query": literal.replace("mutation()", "mutation")},
            headers=good,
        )
    )
    keep(
        httpx.post(
            f"{api}/boot-sources",
            content=b'{"keyring_data": "' + KEYRING_B64.encode() + b'", ',
            headers={**good, "Content-Type": "application/json"},
        )
    )
    keep(
        httpx.post(
            f"{api}/boot-sources",
            json={"url": "http://x/", "keyring_data": KEYRING_B64 * 20000},
            headers=good,
        )
    )
    # Rate limits, then a scrape of the metrics, if the gateway has them.
    for _ in range(8):
        keep(httpx.get(f"{api}/boot-resources", headers=good))
    metrics = httpx.get(f"{base}/metrics")
    if metrics.status_code == 200:
        keep(metrics)


def check(transcript: Transcript, log: Path, settings: Settings, secret_values: list[str]) -> None:
    for where, text in (
        ("answers", transcript.text()),
        ("logs", log.read_text()),
        ("settings", f"{settings!r} {settings}"),
    ):
        assert leaks(text, secret_values) == [], where
    # The run really failed in the ways it meant to.
    for code in (
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "VALIDATION",
        "UPSTREAM_BAD_RESPONSE",
        "RATE_LIMITED",
    ):
        assert code in transcript.text(), code


def test_service_mode_shows_no_secret_in_a_run_full_of_failures(
    simulator: BackgroundServer, tmp_path: Path
) -> None:
    tokens = write_tokens(tmp_path / "tokens", ops="read,write", viewer="read")
    env = {
        "MAAS_GATEWAY_MAAS_URL": f"{simulator.url}/MAAS",
        "MAAS_GATEWAY_MAAS_API_KEY": ADMIN_KEY,
        "MAAS_GATEWAY_TOKENS_FILE": str(tmp_path / "tokens"),
        "MAAS_GATEWAY_MAAS_RETRIES": "0",
        "MAAS_GATEWAY_RATE_LIMIT_PER_SECOND": "0.5",
        "MAAS_GATEWAY_RATE_LIMIT_BURST": "40",
        "MAAS_GATEWAY_MAX_REQUEST_BYTES": "65536",
    }
    transcript = Transcript()
    log = tmp_path / "gateway.log"
    with serve(env, log) as base:
        drive_failures(base, simulator.url, transcript, tokens["ops"])
        transcript.keep(
            httpx.post(
                f"{base}/graphql",
                json={"query": "mutation { stopImport { importing } }"},
                headers=bearer(tokens["viewer"]),
            )
        )
    settings = Settings(
        _env_file=None, **{k.removeprefix("MAAS_GATEWAY_").lower(): v for k, v in env.items()}
    )
    secret_values = [
        *secrets_of(ADMIN_KEY, USER_KEY),
        *tokens.values(),
        KEYRING_B64,
        KEYRING.decode(),
    ]
    check(transcript, log, settings, secret_values)


def test_passthrough_mode_shows_no_secret_in_a_run_full_of_failures(
    simulator: BackgroundServer, tmp_path: Path
) -> None:
    env = {
        "MAAS_GATEWAY_MAAS_URL": f"{simulator.url}/MAAS",
        "MAAS_GATEWAY_AUTH_MODE": "passthrough",
        "MAAS_GATEWAY_MAAS_RETRIES": "0",
        "MAAS_GATEWAY_RATE_LIMIT_PER_SECOND": "0.5",
        "MAAS_GATEWAY_RATE_LIMIT_BURST": "40",
        "MAAS_GATEWAY_MAX_REQUEST_BYTES": "65536",
    }
    unknown = f"Unknown{secrets.token_hex(6)}:{secrets.token_hex(9)}:{secrets.token_hex(16)}"
    transcript = Transcript()
    log = tmp_path / "gateway.log"
    with serve(env, log) as base:
        drive_failures(base, simulator.url, transcript, ADMIN_KEY)
        for key in (USER_KEY, unknown):
            transcript.keep(httpx.get(f"{base}/api/v1/boot-sources", headers=bearer(key)))
            transcript.keep(
                httpx.post(
                    f"{base}/graphql", json={"query": "{ bootSources { id } }"}, headers=bearer(key)
                )
            )
            ws_attempt(base, {"Authorization": f"Bearer {key}:extra"}, transcript)
    settings = Settings(
        _env_file=None, **{k.removeprefix("MAAS_GATEWAY_").lower(): v for k, v in env.items()}
    )
    secret_values = [*secrets_of(ADMIN_KEY, USER_KEY, unknown), KEYRING_B64, KEYRING.decode()]
    check(transcript, log, settings, secret_values)


def test_settings_never_show_the_maas_key() -> None:
    settings = Settings(_env_file=None, maas_url="http://maas:5240/MAAS", maas_api_key=ADMIN_KEY)
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert leaks(text, secrets_of(ADMIN_KEY)) == []
