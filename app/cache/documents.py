"""Persisted GraphQL documents by their sha256: a bounded local memory, shared between replicas
through Redis when it is configured."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from cachetools import LRUCache


def document_hash(text: str) -> str:
    """The sha256 clients name a document by (Apollo's persisted queries), in hex."""
    return hashlib.sha256(text.encode()).hexdigest()


SharedGet = Callable[[str], Awaitable[str | None]]
SharedPut = Callable[[str, str], None]


class DocumentStore:
    """Documents registered by clients (automatic persisted queries). The same text object is
    handed back each time, so the parse remembered by its text is found at once."""

    def __init__(self, maxsize: int = 4096) -> None:
        self._local: LRUCache[str, str] = LRUCache(maxsize)
        self._shared_get: SharedGet | None = None
        self._shared_put: SharedPut | None = None

    def share(self, get: SharedGet, put: SharedPut) -> None:
        """Keep documents in a shared store too (Redis), so every replica knows them."""
        self._shared_get, self._shared_put = get, put

    def known(self, sha256: str) -> str | None:
        """The document if this replica has it at hand (no waiting: the stored-answer path)."""
        return self._local.get(sha256)

    async def find(self, sha256: str) -> str | None:
        text = self._local.get(sha256)
        if text is None and self._shared_get is not None:
            text = await self._shared_get(sha256)
            if text is not None and document_hash(text) == sha256:
                self._local[sha256] = text
            else:
                text = None  # a corrupt shared entry is as good as none
        return text

    def keep(self, sha256: str, text: str) -> None:
        """Remember a document whose hash the caller has checked."""
        if sha256 in self._local:
            return
        self._local[sha256] = text
        if self._shared_put is not None:
            self._shared_put(sha256, text)
