"""Who is calling: turns an incoming request into the caller whose credential signs upstream."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from app.service import Caller


class CallerResolver:
    """Resolves callers for REST, GraphQL and websockets alike; set up by the app's lifespan."""

    def __init__(self) -> None:
        self.default: Caller | None = None

    def resolve(self, connection: HTTPConnection) -> Caller:
        if self.default is None:
            raise RuntimeError("the gateway has not started")
        return self.default
