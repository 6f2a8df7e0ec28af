"""The service layer both faces call: the boot service, MAAS payloads as gateway models, and
import progress; the cache's words the faces need come through here."""

from app.cache import CacheOutcome, Family, StoredResponse
from app.service.boot import (
    RESOURCE_FAMILIES,
    BootService,
    Caller,
    ReadLog,
    cache_policies,
    track_reads,
)

__all__ = [
    "RESOURCE_FAMILIES",
    "BootService",
    "CacheOutcome",
    "Caller",
    "Family",
    "ReadLog",
    "StoredResponse",
    "cache_policies",
    "track_reads",
]
