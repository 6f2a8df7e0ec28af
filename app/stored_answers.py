"""What both faces' stored-answer edges share: who may be given one, and copying an answer."""

from __future__ import annotations

from starlette.types import Message, Scope, Send

from app.callers import CallerResolver
from app.security import Scope as Permission
from app.service import Caller


def reader(callers: CallerResolver, scope: Scope) -> Caller | None:
    """The caller when it may be given a stored answer, else None: the request then takes the
    full path, whose endpoint reports who may not call, and how. Stored answers are read
    results, so only a reader may have one, even one it stored itself."""
    try:
        identity = callers.identify_scope(scope)
    except Exception:
        return None
    return identity.caller if identity.allows(Permission.READ) else None


class Captured:
    """Passes an answer through while keeping a copy of its status, headers and body;
    `mark` is a header added to the answer on its way (e.g. X-Cache: MISS)."""

    def __init__(self, send: Send, mark: tuple[bytes, bytes] | None = None) -> None:
        self._send = send
        self._mark = mark
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.complete = False

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
            if self._mark is not None:
                message["headers"] = [*self.headers, self._mark]
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        await self._send(message)
