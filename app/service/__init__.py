"""The service layer both faces call: the boot service, MAAS payloads as gateway models, and
import progress; the cache's words the faces need come through here."""

from app.cache import CacheOutcome, Family, StoredResponse
from app.cache.documents import DocumentStore, document_hash
from app.service.boot import (
    RESOURCE_FAMILIES,
    BootService,
    Caller,
    ReadLog,
    cache_policies,
    track_reads,
)
from app.service.images import (
    DesiredSelection,
    DesiredSource,
    ImagesResult,
    ImagesSpec,
    PlanStep,
    images_document,
)

__all__ = [
    "RESOURCE_FAMILIES",
    "BootService",
    "CacheOutcome",
    "Caller",
    "DesiredSelection",
    "DesiredSource",
    "DocumentStore",
    "Family",
    "ImagesResult",
    "ImagesSpec",
    "PlanStep",
    "ReadLog",
    "StoredResponse",
    "cache_policies",
    "document_hash",
    "images_document",
    "track_reads",
]
