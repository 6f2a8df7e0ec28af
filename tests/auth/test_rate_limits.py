"""Token buckets per principal: rates other than one a second, amounts other than one, and
the bound on how many principals are remembered; limits drawn from a real redis-server, and
counted alone while Redis cannot count."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from app.auth.rate_limits import Limit, RateLimiter
from app.cache import EntityCache
from app.cache.redis import RedisBackend
from app.core.settings import Settings
from tests.conftest import ADMIN_KEY


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_is_what_the_missing_tokens_take_at_the_configured_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(4.0, 2, clock=clock)
    assert limiter.acquire("p") == limiter.acquire("p") == 0.0
    assert limiter.acquire("p") == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.acquire("p") == 0.0


def test_an_amount_takes_that_many_tokens_and_never_more_than_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 10, clock=clock)
    assert limiter.acquire("p", 4) == limiter.acquire("p", 4) == 0.0
    assert limiter.acquire("p", 4) == pytest.approx(1.0)  # 2 missing, at 2 a second
    assert limiter.acquire("q", 10) == 0.0  # principals have buckets of their own
    clock.now += 1.0
    assert limiter.acquire("p", 4) == 0.0


def test_a_flood_of_distinct_principals_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 5, max_principals=100, clock=clock)
    for n in range(100):
        limiter.acquire(f"p{n}")
    clock.now += 0.5  # none is full yet: keeping them all would pass the bound
    limiter.acquire("new")
    assert len(limiter._buckets) == 1


def test_full_buckets_are_forgotten_first_and_partly_used_ones_kept() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 5, max_principals=100, clock=clock)
    for n in range(99):
        limiter.acquire(f"p{n}")
    clock.now += 2  # every one of those is full again
    limiter.acquire("busy", 5)
    limiter.acquire("new")
    assert set(limiter._buckets) == {"busy", "new"}
    assert limiter.acquire("busy") == pytest.approx(1.0)  # still empty: not forgotten


def test_a_rate_of_zero_or_a_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        RateLimiter(0, 1)
    with pytest.raises(ValueError, match="burst >= 1"):
        RateLimiter(1, 0)


def test_a_refused_take_keeps_what_had_refilled() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 2, clock=clock)
    assert limiter.acquire("p", 2) == 0.0
    waits = []
    for step in (0.5, 0.25):
        clock.now += step
        waits.append(limiter.acquire("p"))
    assert waits == [pytest.approx(0.5), pytest.approx(0.25)]


@pytest.mark.parametrize("rate", [0.5, 2.0, 10.0])
def test_retry_after_is_the_missing_amount_at_each_rate(rate: float) -> None:
    clock = Clock()
    limiter = RateLimiter(rate, 3, clock=clock)
    assert limiter.acquire("p", 3) == 0.0
    assert limiter.acquire("p") == pytest.approx(1 / rate)
    assert limiter.acquire("p", 3) == pytest.approx(3 / rate)
    clock.now += 1 / rate
    assert limiter.acquire("p") == 0.0


def test_buckets_full_again_at_the_rate_are_pruned_and_no_sooner() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 4, max_principals=100, clock=clock)
    for n in range(50):
        limiter.acquire(f"full-{n}")  # 3 left: full again after exactly 0.5 s at 2 a second
    clock.now += 0.25
    for n in range(50):
        limiter.acquire(f"busy-{n}", 2)  # 2 left at 0.25 s; 3 at 0.5 s: not full
    clock.now += 0.25
    limiter.acquire("new")
    assert len(limiter._buckets) == 51
    assert "full-0" not in limiter._buckets


def test_the_default_bound_is_a_hundred_thousand_principals() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 5, clock=clock)
    for n in range(100_000):
        limiter.acquire(f"p{n}")
    assert len(limiter._buckets) == 100_000
    limiter.acquire("one too many")  # none is full: all are forgotten rather than kept
    assert len(limiter._buckets) == 1


def test_a_burst_of_one_and_a_rate_below_one_are_taken() -> None:
    limiter = RateLimiter(0.1, 1, clock=Clock())
    assert limiter.acquire("p") == 0.0
    assert limiter.acquire("p") == pytest.approx(10)
    with pytest.raises(ValueError, match=r"^rate must be > 0 and burst >= 1$"):
        RateLimiter(-1, 5)


# Limits shared through Redis --------------------------------------------------------------------

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None and not os.environ.get("CI"),
    reason="redis-server is not installed (CI installs it)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _answers(port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


def _backend(url: str) -> RedisBackend:
    settings = Settings(maas_url="http://127.0.0.1:9/MAAS", maas_api_key=ADMIN_KEY, redis_url=url)
    return RedisBackend(settings, EntityCache({}))


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[RedisBackend, RedisBackend]]:
    """Two replicas' connections to one redis-server, each connected."""
    backends = (_backend(redis_url), _backend(redis_url))
    for backend in backends:
        backend.start()
    try:
        with anyio.fail_after(10):
            while not all(b.connected for b in backends):
                await anyio.sleep(0.01)
        yield backends
    finally:
        for backend in backends:
            await backend.close()


@needs_redis
@pytest.mark.anyio
async def test_replicas_draw_from_one_bucket_per_limit_and_principal(
    replicas: tuple[RedisBackend, RedisBackend],
) -> None:
    one, other = (Limit("requests", 1.0, 2, shared=backend) for backend in replicas)
    budget = Limit("cost", 1.0, 2, shared=replicas[0])

    assert [await one.take("p"), await other.take("p")] == [0.0, 0.0]
    assert 0.5 < await one.take("p") <= 1.0  # the other replica took one
    assert 1.5 < await other.take("p", 2) <= 2.0
    assert await other.take("q", 2) == 0.0  # another principal: another bucket
    assert await budget.take("p", 2) == 0.0  # another limit: another bucket
    assert one.local.acquire("p", 2) == 0.0  # nothing was counted locally
    assert (one.rate, one.burst) == (1.0, 2.0)


@pytest.mark.anyio
async def test_a_replica_counts_alone_while_redis_cannot_and_says_so_once_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Never started: it cannot count, as when Redis is unreachable.
    down = _backend(f"redis://127.0.0.1:{_free_port()}/0")
    limit = Limit("requests", 0.5, 1, shared=down)
    with caplog.at_level(logging.WARNING, logger="app.auth.rate_limits"):
        waits = [await limit.take("p"), await limit.take("p"), await limit.take("q", 2)]
    assert waits[0] == 0.0
    assert 1.5 < waits[1] <= 2.0  # one token missing at 0.5 a second, less what refilled since
    assert waits[2] == pytest.approx(2.0)  # q's own bucket, though 2 is more than its burst
    assert [r.getMessage() for r in caplog.records] == [
        "requests limits: Redis cannot count; this replica counts alone"
    ]
    await down.close()


@needs_redis
@pytest.mark.anyio
async def test_a_replica_says_again_that_it_counts_alone_after_redis_came_back(
    replicas: tuple[RedisBackend, RedisBackend], caplog: pytest.LogCaptureFixture
) -> None:
    down = _backend(f"redis://127.0.0.1:{_free_port()}/0")
    limit = Limit("cost", 1.0, 5, shared=down)
    with caplog.at_level(logging.WARNING, logger="app.auth.rate_limits"):
        for shared in (down, replicas[0], down):
            limit.shared = shared
            await limit.take("p")
    assert len(caplog.records) == 2
    await down.close()
