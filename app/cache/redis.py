"""Optional Redis backend: a cross-replica invalidation bus, a shared second-level cache, the
buckets that rate limits and cost budgets draw from across replicas, and one poller per
principal for import progress, elected with a lease, whose snapshots every replica hears."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import hashlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any, TypeVar

import orjson

from app.cache import Dependency, EntityCache, Family
from app.core.models import (
    Architecture,
    BootResource,
    BootResourceFile,
    BootResourceSet,
    BootResourceType,
    BootSourceSelection,
    ImportProgress,
    ResourceProgress,
)
from app.core.settings import Settings

__all__ = ["RedisBackend", "decode", "encode"]

T = TypeVar("T")
log = logging.getLogger(__name__)

CHANNEL = "maas-gateway:invalidate"
_ACK_PREFIX = "maas-gateway:ack:"
_GENERATIONS = "maas-gateway:generations"
_EPOCH = "epoch"
_VALUE_PREFIX = "maas-gateway:l2:"
_DOCUMENT_PREFIX = "maas-gateway:document:"
_BUCKET_PREFIX = "maas-gateway:bucket:"
_FEED_PREFIX = "maas-gateway:feed:"
_LEADER_PREFIX = "maas-gateway:leader:"

# Hold or take a lease: renewed by its holder, taken by anyone once it has lapsed.
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Give a lease up, only if still held: a lapsed one may be someone else's by now.
_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# A token bucket as GCRA: the key holds the time at which the bucket is full again (its
# "theoretical arrival time"). Redis's own clock times it, so replicas' clocks never disagree.
# ARGV: seconds per token, burst, amount. Returns the seconds to wait ("0": allowed), as a
# string because Redis would truncate a Lua number to an integer.
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local interval, burst, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or t)
if tat < t then tat = t end
local full = tat + amount * interval
local wait = full - t - burst * interval
if wait > 0 then return tostring(wait) end
redis.call('SET', KEYS[1], string.format('%.6f', full), 'PX', math.ceil((full - t) * 1000) + 1)
return '0'
"""

# Boot sources carry keyring data: they never leave the process, so nothing secret is in Redis.
L2_FAMILIES = frozenset(
    {Family.BOOT_RESOURCES, Family.BOOT_RESOURCE, Family.SELECTIONS, Family.IMPORT_STATUS}
)

_MAX_BACKOFF = 2.0

# The invalidations of the write running in this context; None outside `BootService` writes.
_pending: ContextVar[list[Dependency] | None] = ContextVar("redis_pending", default=None)

# Only the gateway models L2 may hold can be decoded: a value is never executed or imported.
_DATACLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        Architecture,
        BootResource,
        BootResourceFile,
        BootResourceSet,
        BootSourceSelection,
        ImportProgress,
        ResourceProgress,
    )
}
_ENUMS: dict[str, type[enum.Enum]] = {BootResourceType.__name__: BootResourceType}


def _plain(value: Any) -> Any:
    # Before str: a StrEnum is a str too, and must come back as its enum.
    if isinstance(value, enum.Enum) and type(value).__name__ in _ENUMS:
        return {"e": type(value).__name__, "v": value.value}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if dataclasses.is_dataclass(value) and type(value).__name__ in _DATACLASSES:
        fields = dataclasses.fields(value)
        return {"d": type(value).__name__, "f": [_plain(getattr(value, f.name)) for f in fields]}
    raise TypeError(f"no L2 encoding for {type(value).__name__}")


def _typed(value: Any) -> Any:
    if isinstance(value, list):
        return [_typed(item) for item in value]
    if isinstance(value, dict):
        if "d" in value:
            return _DATACLASSES[value["d"]](*(_typed(item) for item in value["f"]))
        if "e" in value:
            return _ENUMS[value["e"]](value["v"])
        return datetime.fromisoformat(value["t"])
    return value


def encode(value: Any) -> bytes:
    """A gateway model (or a list of them, or a plain value) as JSON with explicit type tags."""
    return orjson.dumps(_plain(value))


def decode(data: bytes | str) -> Any:
    return _typed(orjson.loads(data))


def _field(family: Family, scope: Hashable | None) -> str:
    return family.value if scope is None else f"{family.value}:{scope}"


DOCUMENT_TTL = 7 * 24 * 3600
"""Seconds a persisted document stays in Redis after its last registration."""
STORED_FORMAT = 2
"""Raised when what a stored value means changes while its fields stay (2: a stored GraphQL
answer no longer keeps its content type, which the asker's Accept header chooses)."""


def _schema_version() -> str:
    """A hash of the stored format and every model field L2 holds."""
    fields = sorted(
        (name, [f.name for f in dataclasses.fields(cls)]) for name, cls in _DATACLASSES.items()
    )
    return hashlib.blake2b(repr((STORED_FORMAT, fields)).encode(), digest_size=8).hexdigest()


class RedisBackend:
    """One replica's link to the shared Redis.

    Bus: each write publishes the (family, scope) pairs it invalidated as one message and waits,
    up to `redis_timeout`, until every other subscribed replica acknowledged applying it, so a
    read that follows the write anywhere sees the new data. While the subscription is down the
    local caches keep entries for at most `redis_degraded_ttl`; on reconnecting everything
    cached locally is dropped (messages may have been missed).

    L2: a local miss asks Redis before MAAS. Keys hash the principal, the entry's key and the
    current generations of its family and scope, which every write bumps in Redis, so an entry
    stored before a write can never be read after it. Any Redis error or timeout reads as a
    miss: Redis never fails a request.
    """

    def __init__(self, settings: Settings, cache: EntityCache) -> None:
        try:
            from redis.asyncio import Redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise RuntimeError(
                "MAAS_GATEWAY_REDIS_URL is set but the redis package is missing: "
                "install maas-gateway[redis]"
            ) from None

        if settings.redis_url is None:
            raise ValueError("RedisBackend needs redis_url")
        password = settings.redis_password
        self._timeout = settings.redis_timeout
        self._degraded_ttl = settings.redis_degraded_ttl
        self._redis = Redis.from_url(
            settings.redis_url,
            password=password.get_secret_value() if password is not None else None,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            # A retry would double how long a dead Redis holds a request; the caller degrades.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=1,
        )
        self.cache = cache
        self.shared_cache = settings.redis_shared_cache
        self._take = self._redis.register_script(_TAKE)
        self._lead = self._redis.register_script(_LEAD)
        self._resign = self._redis.register_script(_RESIGN)
        # topic -> what hears the feed's values on this replica
        self._feeds: dict[str, set[Callable[[Any], None]]] = {}
        # Tells this replica's own messages and acknowledgements apart from everyone else's.
        self.origin = f"{os.getpid()}-{secrets.token_hex(6)}"
        self.connected = False
        self.reconnects = 0
        self.published = self.applied = self.errors = 0
        self.l2_hits = self.l2_misses = self.l2_errors = 0
        self._applying = False
        self._sequence = 0
        self._acks: dict[int, list[Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._degraded_logged = False
        # A write whose message may not have gone out: the next connection flushes everyone.
        self._missed = False
        # Part of every shared key: replicas running different model versions never share.
        self._schema = _schema_version()
        cache.listener = self._record
        # Until the subscription is up, other replicas' writes cannot reach this one.
        cache.cap_ttls(self._degraded_ttl)

    # Lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._subscribe(), name="redis-invalidation-bus")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._tasks):
            task.cancel()
        self.cache.listener = None
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    @property
    def degraded(self) -> bool:
        return not self.connected

    def detail(self) -> dict[str, Any]:
        """For /readyz: a degraded replica still serves, with short TTLs."""
        return {
            "connected": self.connected,
            "degraded": self.degraded,
            "ttl_cap_s": self.cache.ttl_cap,
            "shared_cache": self.shared_cache,
            "reconnects": self.reconnects,
        }

    # Bus --------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Around one write: what it invalidates goes out as one message when it ends."""
        pending: list[Dependency] = []
        token = _pending.set(pending)
        try:
            yield
        finally:
            _pending.reset(token)
            if pending:
                await self.publish(pending)

    def _record(self, family: Family, scope: Hashable | None) -> None:
        if self._applying:
            return
        pending = _pending.get()
        if pending is not None:
            pending.append((family, scope))
            return
        # An invalidation outside a write (the end of an import, seen by this replica first).
        task = asyncio.get_running_loop().create_task(self.publish([(family, scope)]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, invalidations: Sequence[Dependency]) -> None:
        """Bump the Redis generations, tell the other replicas and wait for them to apply it."""
        if not self.connected:
            # Not worth a timeout per write: on reconnecting, this replica tells every other
            # one to drop everything (see `_connected`).
            self._missed = True
            return
        unique = list(dict.fromkeys(invalidations))
        self._sequence += 1
        sequence = self._sequence
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # [acks seen, acks expected (None until PUBLISH says), future]: an ack may come first.
        self._acks[sequence] = [0, None, waiter]
        message = orjson.dumps(
            {"o": self.origin, "n": sequence, "i": [[f.value, s] for f, s in unique]}
        )
        try:
            async with asyncio.timeout(self._timeout):
                pipe = self._redis.pipeline(transaction=True)
                for family, scope in unique:
                    pipe.hincrby(_GENERATIONS, _field(family, scope), 1)
                pipe.publish(CHANNEL, message)
                replies = await pipe.execute()
            self.published += 1
            receivers = int(replies[-1]) - (1 if self.connected else 0)
            state = self._acks[sequence]
            state[1] = receivers
            if state[0] >= receivers:
                return
            async with asyncio.timeout(self._timeout):
                await waiter
        except Exception as error:  # any Redis failure: the TTL cap bounds what others serve
            self._missed = True
            self._error("publish", error)
        finally:
            self._acks.pop(sequence, None)

    async def _subscribe(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(self._timeout):
                    await pubsub.subscribe(CHANNEL, _ACK_PREFIX + self.origin)
                    await pubsub.psubscribe(_FEED_PREFIX + "*")
                await self._connected()
                backoff = 0.05
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        await self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._disconnected(error)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py untyped
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _connected(self) -> None:
        # Writes may have happened while this replica could not hear them.
        self.cache.clear()
        self.reconnects += 1
        self.connected = True
        self.cache.cap_ttls(None)
        if self._degraded_logged or self._missed:
            log.warning("redis reachable: cross-replica invalidation restored")
            self._degraded_logged = self._missed = False
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    # Shared entries may predate writes whose generations nobody could bump.
                    await self._redis.hincrby(_GENERATIONS, _EPOCH, 1)
            # And this replica's own writes meanwhile may never have reached the others.
            task = asyncio.get_running_loop().create_task(self.publish([(f, None) for f in Family]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _disconnected(self, error: BaseException) -> None:
        self.connected = False
        self.cache.cap_ttls(self._degraded_ttl)
        if not self._degraded_logged:
            self._degraded_logged = True
            log.warning(
                "redis unreachable (%s): cache TTLs capped at %ss until it is back",
                type(error).__name__,
                self._degraded_ttl,
            )

    async def _handle(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        if message["type"] == "pmessage":
            self._heard(channel.removeprefix(_FEED_PREFIX), message["data"])
            return
        if channel != CHANNEL:
            state = self._acks.get(int(message["data"]))
            if state is not None:
                state[0] += 1
                if state[1] is not None and state[0] >= state[1] and not state[2].done():
                    state[2].set_result(None)
            return
        body = orjson.loads(message["data"])
        if body["o"] == self.origin:
            return
        self._applying = True
        try:
            for family, scope in body["i"]:
                self.cache.invalidate(Family(family), scope)
        finally:
            self._applying = False
        self.applied += 1
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.publish(_ACK_PREFIX + body["o"], str(body["n"]))
        except Exception as error:
            self._error("acknowledge", error)

    def _error(self, what: str, error: BaseException) -> None:
        self.errors += 1
        log.debug("redis %s failed: %s", what, type(error).__name__)

    # Shared cache ------------------------------------------------------------------------------

    def shares(self, family: Family) -> bool:
        return self.shared_cache and family in L2_FAMILIES

    def through(
        self,
        principal: str,
        family: Family,
        scope: Hashable | None,
        key: Hashable,
        loader: Callable[[], Awaitable[T]],
    ) -> Callable[[], Awaitable[T]]:
        """`loader` behind the shared cache: Redis first, then MAAS (stored for the others)."""

        async def load() -> T:
            name = await self._l2_name(principal, family, scope, key)
            if name is not None:
                try:
                    async with asyncio.timeout(self._timeout):
                        data = await self._redis.get(name)
                except Exception as error:
                    self.l2_errors += 1
                    self._error("get", error)
                else:
                    if data is not None:
                        try:
                            value: T = decode(data)
                        except (KeyError, TypeError, ValueError) as error:
                            self.l2_errors += 1
                            self._error("decode", error)
                        else:
                            self.l2_hits += 1
                            return value
                    else:
                        self.l2_misses += 1
            value = await loader()
            if name is not None:
                policy = self.cache.policy(family)
                ttl = policy.ttl if policy is not None else 0.0
                if ttl >= 1:
                    self._store(name, encode(value), int(ttl))
            return value

        return load

    async def _l2_name(
        self, principal: str, family: Family, scope: Hashable | None, key: Hashable
    ) -> str | None:
        """The Redis key for an entry under the current generations; None if Redis is down."""
        if not self.connected:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                generations = await self._redis.hmget(
                    _GENERATIONS, [_EPOCH, family.value, _field(family, scope)]
                )
        except Exception as error:
            self.l2_errors += 1
            self._error("generations", error)
            return None
        # Hashed: neither the principal nor the entry's key can be read back from Redis.
        digest = hashlib.blake2b(digest_size=20)
        parts = (self._schema, principal, family.value, repr(scope), repr(key))
        for part in (*parts, *map(repr, generations)):
            digest.update(part.encode() + b"\0")
        return _VALUE_PREFIX + digest.hexdigest()

    # Shared buckets ---------------------------------------------------------------------------

    async def take(self, key: str, amount: float, rate: float, burst: float) -> float | None:
        """Take `amount` from the bucket every replica shares for `key` (app/auth/rate_limits.py):
        the seconds to wait, 0.0 when allowed, None when Redis could not count."""
        if not self.connected:
            return None
        name = _BUCKET_PREFIX + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        try:
            async with asyncio.timeout(self._timeout):
                wait = await self._take(keys=[name], args=[1.0 / rate, burst, amount])
        except Exception as error:
            self._error("bucket", error)
            return None
        return float(wait)

    # Elected pollers and their feeds ---------------------------------------------------------

    @staticmethod
    def topic(name: str) -> str:
        """A feed's name in Redis: a hash, so a principal never appears there."""
        return hashlib.blake2b(name.encode(), digest_size=16).hexdigest()

    async def lead(self, topic: str, lease: float) -> bool:
        """Whether this replica holds the lease to poll for `topic`, renewing or taking it;
        True while Redis cannot say, so each replica then polls for itself."""
        if not self.connected:
            return True
        try:
            async with asyncio.timeout(self._timeout):
                held = await self._lead(
                    keys=[_LEADER_PREFIX + topic], args=[self.origin, max(1, round(lease * 1000))]
                )
        except Exception as error:
            self._error("lead", error)
            return True
        return bool(held)

    def resign(self, topic: str) -> None:
        """Give the lease up now, so another replica's poller need not wait for it to lapse."""

        async def resign() -> None:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._resign(keys=[_LEADER_PREFIX + topic], args=[self.origin])
            except Exception as error:
                self._error("resign", error)

        task = asyncio.get_running_loop().create_task(resign())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def announce(self, topic: str, value: Any) -> None:
        """Tell the other replicas' followers of `topic` the leader's latest value."""
        if not self.connected:
            return
        body = orjson.dumps({"o": self.origin, "v": _plain(value)})
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.publish(_FEED_PREFIX + topic, body)
        except Exception as error:
            self._error("announce", error)

    def follow(self, topic: str, hear: Callable[[Any], None]) -> Callable[[], None]:
        """Hear the values other replicas announce for `topic`; returns how to stop."""
        self._feeds.setdefault(topic, set()).add(hear)

        def stop() -> None:
            hearers = self._feeds.get(topic)
            if hearers is not None:
                hearers.discard(hear)
                if not hearers:
                    del self._feeds[topic]

        return stop

    def _heard(self, topic: str, data: bytes | str) -> None:
        hearers = self._feeds.get(topic)
        if not hearers:
            return
        try:
            body = orjson.loads(data)
            if body["o"] == self.origin:
                return
            value = _typed(body["v"])
        except (KeyError, TypeError, ValueError) as error:
            self._error("feed", error)
            return
        for hear in list(hearers):
            hear(value)

    # Persisted documents ---------------------------------------------------------------------

    async def document(self, sha256: str) -> str | None:
        """A persisted GraphQL document another replica registered (app/cache/documents.py)."""
        if not self.connected:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                data = await self._redis.get(_DOCUMENT_PREFIX + sha256)
        except Exception as error:
            self.l2_errors += 1
            self._error("get", error)
            return None
        if isinstance(data, bytes):
            return data.decode()
        return data if isinstance(data, str) else None

    def keep_document(self, sha256: str, text: str) -> None:
        if self.connected:
            self._store(_DOCUMENT_PREFIX + sha256, text.encode(), DOCUMENT_TTL)

    def _store(self, name: str, data: bytes, ttl: int) -> None:
        async def store() -> None:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._redis.set(name, data, ex=ttl)
            except Exception as error:
                self.l2_errors += 1
                self._error("set", error)

        # The caller has its value; storing it for the other replicas need not delay it.
        task = asyncio.get_running_loop().create_task(store())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
