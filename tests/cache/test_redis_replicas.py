"""Replicas sharing a real redis-server: cross-replica invalidation, the shared cache, outages."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.cache.redis import decode, encode
from app.cli.server import BackgroundServer
from app.core.models import (
    Architecture,
    BootResource,
    BootResourceFile,
    BootResourceSet,
    BootResourceType,
    BootSourceSelection,
)
from app.core.settings import Settings
from tests.conftest import ADMIN_KEY, USER_KEY
from tests.gateway import (
    bearer,
    maas_call,
    reset_counts,
    set_simulator_config,
    upstream_counts,
)
from tests.graphql.test_subscription import PROGRESS, next_payload, subscription

if shutil.which("redis-server") is None and not os.environ.get("CI"):
    pytest.skip("redis-server is not installed (CI installs it)", allow_module_level=True)

# A gateway process of its own, configured by MAAS_GATEWAY_* variables and name=value arguments
# (given to tests.gateway.gateway_settings); serves until its stdin ends.
_GATEWAY = """
import sys
from app.main import create_app
from app.cli.server import BackgroundServer
from tests.gateway import gateway_settings
overrides = dict(arg.split("=", 1) for arg in sys.argv[3:])
app = create_app(gateway_settings(sys.argv[1], sys.argv[2], log_level="warning", **overrides))
with BackgroundServer(app) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""


def _get(url: str) -> httpx.Response:
    # Plain HTTP on loopback: verify=False skips loading a CA bundle (30 ms a call).
    return httpx.get(url, verify=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A throwaway redis-server on loopback, without persistence, that a test can kill."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.command("PING") == "+PONG":
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def command(self, *words: str) -> str:
        """One command in Redis's inline protocol; the raw first reply line ('' if down)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(" ".join(words).encode() + b"\r\n")
                return conn.recv(1 << 20).decode(errors="replace").split("\r\n")[0]
        except OSError:
            return ""

    def dump(self) -> bytes:
        """Every key and value it holds, for a look at what reached Redis."""
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), "--no-raw", "KEYS", "*"],
            capture_output=True,
            check=True,
        ).stdout
        values = [
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "DUMP", key],
                capture_output=True,
                check=True,
            ).stdout
            for key in out.decode().split()
            if key.strip('"')
        ]
        return out + b"".join(values)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[str]

    def readiness(self) -> dict[str, Any]:
        body: dict[str, Any] = _get(f"{self.url}/readyz").json()
        return body

    def wait_connected(self, connected: bool = True, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.readiness()["redis"]["connected"] is connected:
                return
            time.sleep(0.05)
        raise AssertionError(f"redis connected never became {connected}: {self.readiness()}")


@contextmanager
def replica(
    simulator: BackgroundServer, redis_url: str, *arguments: str, **settings: str
) -> Iterator[Replica]:
    env = dict(os.environ, MAAS_GATEWAY_REDIS_URL=redis_url)
    env.update({f"MAAS_GATEWAY_{name.upper()}": value for name, value in settings.items()})
    child = subprocess.Popen(
        [sys.executable, "-c", _GATEWAY, simulator.url, ADMIN_KEY, *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        assert url.startswith("http://"), f"the gateway did not start (said {url!r})"
        yield Replica(url, child)
    finally:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()
        child.stdout.close()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextmanager
def replicas(
    n: int, simulator: BackgroundServer, redis_url: str, **settings: str
) -> Iterator[list[Replica]]:
    with ExitStack() as stack:
        started = [stack.enter_context(replica(simulator, redis_url, **settings)) for _ in range(n)]
        for one in started:
            one.wait_connected()
        yield started


SELECTION = "/api/v1/boot-sources/1/selections"
SOURCE = "/api/v1/boot-sources/1"
# A query string tells versions of the source apart and keeps the simulator's images index.
STREAM = "http://images.maas.io/ephemeral-v3/stable/"
# Every non-empty set of the simulator's architectures: values a selection accepts.
ARCH_SETS = [
    sorted(a for bit, a in enumerate(("amd64", "arm64", "ppc64el", "s390x")) if mask >> bit & 1)
    for mask in range(1, 16)
]


def _first_selection(url: str) -> int:
    selections = _get(f"{url}{SELECTION}").json()
    selection_id: int = selections[0]["id"]
    return selection_id


def _arches(url: str, selection_id: int) -> list[str]:
    body = _get(f"{url}{SELECTION}/{selection_id}").json()
    arches: list[str] = body["arches"]
    return arches


def _set_arches(url: str, selection_id: int, arches: list[str]) -> None:
    response = httpx.patch(
        f"{url}{SELECTION}/{selection_id}", json={"arches": arches}, verify=False
    )
    assert response.status_code == 200, response.text


def _source_url(url: str) -> str:
    value: str = _get(f"{url}{SOURCE}").json()["url"]
    return value


def _set_source_url(client: httpx.Client, url: str, value: str) -> None:
    response = client.patch(f"{url}{SOURCE}", json={"url": value})
    assert response.status_code == 200, response.text


def test_a_write_through_one_replica_is_never_followed_by_a_stale_read_through_the_other(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    with replicas(2, simulator, redis_server.url) as (a, b), httpx.Client(verify=False) as client:
        selection_id = _first_selection(a.url)
        for step in range(40):
            writer, reader = (a, b) if step % 2 == 0 else (b, a)
            arches = ARCH_SETS[step % len(ARCH_SETS)]
            source = f"{STREAM}?v={step}"
            # Both caches (entity and stored answer) hold the old values before the write.
            for _ in range(2):
                _arches(reader.url, selection_id)
                _source_url(reader.url)
                _get(f"{reader.url}{SELECTION}")
            _set_arches(writer.url, selection_id, arches)
            assert _arches(reader.url, selection_id) == arches
            listed = _get(f"{reader.url}{SELECTION}").json()
            assert [s["arches"] for s in listed if s["id"] == selection_id] == [arches]
            _set_source_url(client, writer.url, source)
            assert _source_url(reader.url) == source


def test_reads_racing_writes_on_another_replica_never_go_back_in_time(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    def version(url: str) -> int:
        return int(url.rsplit("=", 1)[1])

    with replicas(2, simulator, redis_server.url) as (a, b):
        with httpx.Client(verify=False) as client:
            _set_source_url(client, a.url, f"{STREAM}?v=0")
        written: list[tuple[float, int]] = []  # (when the write returned, its value)
        read: list[tuple[float, int]] = []  # (when the read started, what it saw)
        done = threading.Event()

        def reader(url: str) -> None:
            with httpx.Client(verify=False) as client:
                while not done.is_set():
                    started = time.monotonic()
                    body = client.get(f"{url}{SOURCE}").json()
                    read.append((started, version(body["url"])))

        threads = [threading.Thread(target=reader, args=(url,)) for url in (b.url, b.url, a.url)]
        for thread in threads:
            thread.start()
        try:
            with httpx.Client(verify=False) as client:
                for value in range(1, 61):
                    url = a.url if value % 3 else b.url
                    _set_source_url(client, url, f"{STREAM}?v={value}")
                    written.append((time.monotonic(), value))
                    time.sleep(0.003 * (value % 4))
        finally:
            done.set()
            for thread in threads:
                thread.join()
        assert len(read) > 100
        for started, seen in read:
            newest = max((v for at, v in written if at < started), default=0)
            assert seen >= newest, f"a read started after write {newest} returned saw {seen}"


def test_the_shared_cache_cuts_upstream_calls_of_n_replicas_to_those_of_one(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    with replicas(3, simulator, redis_server.url) as group:
        reset_counts(simulator.url)
        for one in group:
            for path in ("/api/v1/boot-resources", f"{SELECTION}", "/api/v1/boot-resources/1"):
                assert _get(f"{one.url}{path}").status_code == 200
        calls = upstream_counts(simulator.url)
        shared = [_get(f"{one.url}/metrics").text for one in group]
    reads = {path: count for path, count in calls.items() if "version" not in path}
    assert reads and all(count == 1 for count in reads.values()), reads
    # The first replica loaded from MAAS; the others found its answers in Redis.
    assert 'maas_gateway_shared_cache_requests_total{outcome="miss"} 3.0' in shared[0]
    for metrics in shared[1:]:
        assert 'maas_gateway_shared_cache_requests_total{outcome="hit"} 3.0' in metrics


def test_without_the_shared_cache_each_replica_calls_maas_itself(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    with replicas(3, simulator, redis_server.url, redis_shared_cache="false") as group:
        reset_counts(simulator.url)
        for one in group:
            assert _get(f"{one.url}/api/v1/boot-resources").status_code == 200
        calls = upstream_counts(simulator.url)
    assert 3 in calls.values(), calls


def test_the_shared_cache_is_never_shared_between_principals(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    passthrough = "auth_mode=passthrough"
    with (
        replica(simulator, redis_server.url, passthrough) as a,
        replica(simulator, redis_server.url, passthrough) as b,
    ):
        a.wait_connected()
        b.wait_connected()
        reset_counts(simulator.url)
        for one, key in ((a, ADMIN_KEY), (b, USER_KEY), (b, ADMIN_KEY), (a, USER_KEY)):
            response = httpx.get(
                f"{one.url}/api/v1/boot-resources", headers=bearer(key), verify=False
            )
            assert response.status_code == 200
        calls = upstream_counts(simulator.url)
    # One load per MAAS key, each then shared with the other replica, never across keys.
    assert [count for path, count in calls.items() if "version" not in path] == [2], calls


def test_nothing_secret_reaches_redis_when_boot_sources_are_read(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    with replicas(1, simulator, redis_server.url) as (one,):
        sources = _get(f"{one.url}/api/v1/boot-sources").json()
        assert _get(f"{one.url}/api/v1/boot-sources/1").status_code == 200
        assert _get(f"{one.url}/api/v1/boot-resources").status_code == 200
        time.sleep(0.2)  # stores to the shared cache run after the answer
        held = redis_server.dump()
    assert b"maas-gateway:l2:" in held  # the resources were shared...
    keyrings = [s["keyring_data"] for s in sources if s.get("keyring_data")]
    for secret in [*keyrings, ADMIN_KEY.split(":")[2], "keyring", sources[0]["url"]]:
        assert secret.encode() not in held  # ...the boot sources and the credential were not


def test_killing_and_restarting_redis_loses_no_correctness(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    with replicas(2, simulator, redis_server.url, redis_degraded_ttl="0.5") as (a, b):
        selection_id = _first_selection(a.url)
        assert _arches(b.url, selection_id) == _arches(a.url, selection_id)
        redis_server.kill()
        b.wait_connected(False)
        detail = b.readiness()
        assert detail["status"] == "ready"
        assert detail["redis"] == {**detail["redis"], "degraded": True, "ttl_cap_s": 0.5}
        metrics = _get(f"{b.url}/metrics").text
        assert "maas_gateway_cache_degraded 1.0" in metrics
        assert "maas_gateway_redis_connected 0.0" in metrics
        # Writes and reads still work; another replica's write shows once the short TTL ends.
        _arches(b.url, selection_id)
        _set_arches(a.url, selection_id, ["s390x"])
        time.sleep(0.6)
        assert _arches(b.url, selection_id) == ["s390x"]

        redis_server.start()
        a.wait_connected()
        b.wait_connected()
        assert b.readiness()["redis"]["ttl_cap_s"] is None
        assert "maas_gateway_cache_degraded 0.0" in _get(f"{b.url}/metrics").text
        for step in range(10):
            writer, reader = (a, b) if step % 2 == 0 else (b, a)
            arches = ARCH_SETS[step]
            _arches(reader.url, selection_id)
            _set_arches(writer.url, selection_id, arches)
            assert _arches(reader.url, selection_id) == arches


def test_a_gateway_serves_with_short_ttls_when_redis_is_down_at_start(
    simulator: BackgroundServer, tmp_path: Path
) -> None:
    down = RedisServer(tmp_path)  # never started: nothing listens on its port
    with replica(simulator, down.url, redis_degraded_ttl="0.5") as one:
        assert _get(f"{one.url}/api/v1/boot-resources").status_code == 200
        detail = one.readiness()
        assert detail["status"] == "ready"
        assert detail["redis"]["connected"] is False
        assert detail["redis"]["ttl_cap_s"] == 0.5
        down.start()
        try:
            one.wait_connected()
            assert _get(f"{one.url}/api/v1/boot-resources").status_code == 200
        finally:
            down.kill()


def test_shared_cache_values_round_trip_through_their_encoding() -> None:
    resource = BootResource(
        id=7,
        name="ubuntu/noble",
        os="ubuntu",
        release="noble",
        architecture=Architecture(arch="amd64", subarch="generic"),
        title="Ubuntu 24.04",
        type=BootResourceType.SYNCED,
        subarches=["generic", "hwe-24.04"],
        last_deployed=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        base_image=None,
        sets=[
            BootResourceSet(
                id="7/20260101",
                version="20260101",
                label="stable",
                size=3 * 2**31,
                complete=False,
                progress=42.5,
                files=[
                    BootResourceFile(
                        id="7/20260101/root.tgz",
                        filename="root.tgz",
                        filetype="root-tgz",
                        size=3 * 2**31,
                        sha256="ab" * 32,
                        complete=False,
                        progress=42.5,
                    )
                ],
            )
        ],
    )
    selection = BootSourceSelection(id=1, boot_source_id=1, os="ubuntu", release="noble")
    for value in ([resource], resource, [selection], True, None):
        # repr too: a StrEnum equals its string, but must come back as the enum.
        assert decode(encode(value)) == value
        assert repr(decode(encode(value))) == repr(value)


def test_a_redis_url_holding_a_password_is_refused() -> None:
    with pytest.raises(ValidationError, match="set redis_password instead"):
        Settings(redis_url="redis://:hunter2@redis:6379/0")
    assert Settings(redis_url=" ").redis_url is None


def test_a_document_one_replica_registers_is_known_to_the_others(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    """Apollo's persisted queries across replicas: a load balancer may send the hash-only
    request to another replica than the one that was sent the text."""
    document = "{ bootSources { id url } }"
    sha256 = hashlib.sha256(document.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha256}}
    with (
        replica(simulator, redis_server.url) as first,
        replica(simulator, redis_server.url) as second,
    ):
        first.wait_connected()
        second.wait_connected()
        unknown = httpx.post(f"{second.url}/graphql", json={"extensions": persisted})
        assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        registered = httpx.post(
            f"{first.url}/graphql", json={"query": document, "extensions": persisted}
        )
        assert registered.json()["data"]["bootSources"]

        def known() -> bool:
            answer = httpx.post(f"{second.url}/graphql", json={"extensions": persisted}).json()
            return "data" in answer

        deadline = time.monotonic() + 15  # the registration is stored after its answer
        while not known():
            assert time.monotonic() < deadline, "the second replica never found the document"
            time.sleep(0.05)


@contextmanager
def limited_replicas(
    n: int, simulator: BackgroundServer, redis_url: str, *arguments: str
) -> Iterator[list[Replica]]:
    with ExitStack() as stack:
        started = [stack.enter_context(replica(simulator, redis_url, *arguments)) for _ in range(n)]
        for one in started:
            one.wait_connected()
        yield started


def _statuses(urls: list[str], path: str, rounds: int) -> list[int]:
    return [_get(f"{url}{path}").status_code for _ in range(rounds) for url in urls]


# So slow a refill that none happens while a test runs: what is granted is the burst alone.
SLOW_RATE = ("rate_limit_per_second=0.001", "rate_limit_burst=6")


def test_three_replicas_grant_a_caller_its_rate_limit_once_not_three_times(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    with limited_replicas(3, simulator, redis_server.url, *SLOW_RATE) as started:
        statuses = _statuses([r.url for r in started], "/api/v1/boot-resources", rounds=4)
    assert statuses.count(200) == 6
    assert statuses.count(429) == 6
    assert statuses[:6] == [200] * 6  # the first six, whichever replica each reached


def test_three_replicas_share_one_cost_budget(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    nested = {"query": "{ bootResources { id sets { id } } }"}  # estimated at 51
    budget = ("cost_budget=120", "cost_budget_window=3600", "response_cache_ttl=0")
    with limited_replicas(3, simulator, redis_server.url, *budget) as started:
        codes = [
            httpx.post(f"{r.url}/graphql", json=nested, verify=False).status_code for r in started
        ]
    assert codes == [200, 200, 429]


def test_each_replica_counts_alone_while_redis_is_down(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    with limited_replicas(2, simulator, redis_server.url, *SLOW_RATE) as started:
        urls = [r.url for r in started]
        assert _statuses(urls, "/api/v1/boot-resources", rounds=4).count(200) == 6
        redis_server.kill()
        for one in started:
            one.wait_connected(False)
        # Rather than no limit at all: each replica's own bucket, untouched while Redis counted.
        assert _statuses(urls, "/api/v1/boot-resources", rounds=6) == [200] * 12
        assert _statuses(urls, "/api/v1/boot-resources", rounds=1) == [429, 429]


def _polls(one: Replica) -> float:
    """MAAS `is_importing` calls this replica made (its own metrics)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in _get(f"{one.url}/metrics").text.splitlines()
        if line.startswith("maas_gateway_upstream_requests_total") and "is_importing" in line
    )


def _until_importing(ws: Any) -> None:
    while not next_payload(ws, timeout=30)["data"]["importProgress"]["importing"]:
        pass


def test_one_replica_polls_import_progress_for_all_and_another_takes_over_when_it_dies(
    simulator: BackgroundServer, redis_server: RedisServer
) -> None:
    set_simulator_config(simulator.url, import_duration_s=30.0)
    poll = ("import_poll_interval=0.5", "cache_ttl_while_importing=0.1")
    with limited_replicas(3, simulator, redis_server.url, *poll) as started, ExitStack() as stack:
        sockets = [stack.enter_context(subscription(r.url, PROGRESS)) for r in started]
        firsts = [next_payload(ws, timeout=30) for ws in sockets]
        assert all(first == firsts[0] for first in firsts)  # followers hear the leader
        maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.start_import())
        for ws in sockets:
            _until_importing(ws)
        polls = [_polls(one) for one in started]
        assert [count > 0 for count in polls].count(True) == 1, polls
        leader = started[polls.index(max(polls))]
        followers = [
            (one, ws) for one, ws in zip(started, sockets, strict=True) if one is not leader
        ]

        leader.process.kill()  # no resignation: its lease has to lapse
        leader.process.wait()
        deadline = time.monotonic() + 30
        while not any(_polls(one) > 0 for one, _ in followers):
            assert time.monotonic() < deadline, "no replica took the lease over"
            time.sleep(0.05)
        # The survivors' subscribers go on hearing the import, from the new leader.
        set_simulator_config(simulator.url, import_duration_s=0.5)
        for _, ws in followers:
            while True:
                snapshot = next_payload(ws, timeout=30)["data"]["importProgress"]
                if not snapshot["importing"]:
                    break
        assert [_polls(one) > 0 for one, _ in followers].count(True) == 1
