"""What both faces' stored-answer edges share: who may be given one, and copying an answer."""

from __future__ import annotations

from starlette.types import Message, Scope, Send

from app.callers import CallerResolver, Identity
from app.security import Scope as Permission
from app.service import Caller

# Set on the ASGI scope by a layer that looked for a stored answer and found none, so the
# edge behind it does not look (and count a miss) again.
MISSED_KEY = "maas_gateway.stored_answer_missed"


def reader(
    callers: CallerResolver, scope: Scope, authorization: bytes | None = None
) -> Caller | None:
    """The caller when it may be given a stored answer, else None: the request then takes the
    full path, whose endpoint reports who may not call, and how. Stored answers are read
    results, so only a reader may have one, even one it stored itself. `authorization` is the
    request's Authorization header when the caller already found it."""
    try:
        identity = callers.identify_scope(scope, authorization)
    except Exception:
        return None
    return stored_answer_caller(identity)


def stored_answer_caller(identity: Identity) -> Caller | None:
    """The identity's caller if it may be given stored answers: only readers may."""
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
