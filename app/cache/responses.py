"""Stored answers: serialized responses by principal and key, invalid once anything they read
changed."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from app.cache.reads import ReadTracker

if TYPE_CHECKING:
    from app.cache.entities import Dependency, EntityCache


def response_key(
    document: str | bytes,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> tuple[str, str]:
    """(document hash, variables hash) for `ResponseCache`; variables are hashed key-sorted."""
    doc = document.encode() if isinstance(document, str) else document
    doc_hash = hashlib.blake2b(doc, digest_size=16)
    if operation_name:
        doc_hash.update(b"\0" + operation_name.encode())
    variables_bytes = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
    return doc_hash.hexdigest(), hashlib.blake2b(variables_bytes, digest_size=16).hexdigest()


Headers = tuple[tuple[bytes, bytes], ...]


class StoredResponse:
    """A stored answer: its body and the headers that go with it (e.g. ETag)."""

    __slots__ = ("body", "checked_at", "dependencies", "expires_at", "headers")

    def __init__(
        self,
        body: bytes,
        expires_at: float,
        dependencies: tuple[tuple[Dependency, int], ...],
        checked_at: int,
        headers: Headers = (),
    ) -> None:
        self.body = body
        self.headers = headers
        self.expires_at = expires_at
        self.dependencies = dependencies
        # The entity cache's write counter when the dependencies were last found current.
        self.checked_at = checked_at


class ResponseCache:
    """Serialized responses keyed by (principal, key), e.g. key = `response_key(...)`.

    A response lives until its own ttl, until the earliest expiry of the entries it was built
    from, or until any (family, scope) it read changes generation in the `EntityCache`.
    """

    def __init__(
        self,
        entities: EntityCache,
        *,
        ttl: float,
        maxsize: int = 1_000,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if ttl < 0 or maxsize < 1 or max_bytes < 1:
            raise ValueError("ttl must be >= 0, maxsize and max_bytes >= 1")
        self._entities = entities
        # The entity cache's clock: expiries recorded by a ReadTracker are on it.
        self._clock = entities.clock
        self._ttl = ttl
        self._maxsize = maxsize
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, Hashable], StoredResponse] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = self._expired = self._invalidated = 0
        self._evictions = self._refused = 0

    def get(self, principal: str, key: Hashable) -> bytes | None:
        response = self.lookup(principal, key)
        return None if response is None else response.body

    def lookup(self, principal: str, key: Hashable) -> StoredResponse | None:
        """The stored response, if it is still current; counts a hit or a miss."""
        full_key = (principal, key)
        response = self._entries.get(full_key)
        if response is None:
            self._misses += 1
            return None
        if self._clock() >= response.expires_at:
            self._expired += 1
            self._misses += 1
            self._discard(full_key)
            return None
        writes = self._entities.writes
        if writes != response.checked_at:
            # Something was written since the last check: compare each dependency once.
            generation = self._entities.generation
            for (family, scope), seen in response.dependencies:
                if generation(family, scope) != seen:
                    self._invalidated += 1
                    self._misses += 1
                    self._discard(full_key)
                    return None
            response.checked_at = writes
        self._entries.move_to_end(full_key)
        self._hits += 1
        return response

    def set(
        self,
        principal: str,
        key: Hashable,
        body: bytes,
        reads: ReadTracker,
        headers: Headers = (),
    ) -> bool:
        """Store `body` built from `reads`; refused (False) when it cannot be served later:
        a read was stale or failed, a read's data changed meanwhile, or it is already expired."""
        now = self._clock()
        expires_at = min(now + self._ttl, reads.expires_at)
        dependencies = tuple(reads.dependencies.items())
        generation = self._entities.generation
        if (
            not reads.cacheable
            or expires_at <= now
            or len(body) > self._max_bytes
            or any(generation(family, scope) != seen for (family, scope), seen in dependencies)
        ):
            self._refused += 1
            return False
        full_key = (principal, key)
        self._discard(full_key)
        self._entries[full_key] = StoredResponse(
            body, expires_at, dependencies, self._entities.writes, headers
        )
        self._bytes += len(body)
        while len(self._entries) > self._maxsize or self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted.body)
            self._evictions += 1
        return True

    def _discard(self, full_key: tuple[str, Hashable]) -> None:
        response = self._entries.pop(full_key, None)
        if response is not None:
            self._bytes -= len(response.body)

    def stats(self) -> dict[str, int]:
        return {
            "hits": self._hits,
            "misses": self._misses,
            "expired": self._expired,
            "invalidated": self._invalidated,
            "evictions": self._evictions,
            "refused": self._refused,
            "size": len(self._entries),
            "bytes": self._bytes,
        }

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
