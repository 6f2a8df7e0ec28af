"""The caches under the service: entities from MAAS, the reads a response made, stored answers,
and the Redis backend that shares invalidations between replicas."""

from app.cache.entities import (
    CacheOutcome,
    CachePolicy,
    CacheResult,
    Dependency,
    EntityCache,
    Family,
    estimate_size,
)
from app.cache.reads import ReadTracker
from app.cache.responses import Headers, ResponseCache, StoredResponse, response_key

__all__ = [
    "CacheOutcome",
    "CachePolicy",
    "CacheResult",
    "Dependency",
    "EntityCache",
    "Family",
    "Headers",
    "ReadTracker",
    "ResponseCache",
    "StoredResponse",
    "estimate_size",
    "response_key",
]
