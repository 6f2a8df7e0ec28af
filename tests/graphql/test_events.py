"""Subscription events: one execution per shared event and document, however many subscribe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import pytest
import strawberry

from app.graphql.events import shared_event_executor
from app.graphql.limits import Documents, Limits


@dataclass
class Snapshot:
    importing: bool
    reads: list[str] = field(default_factory=list)


@strawberry.type
class Progress:
    snapshot: strawberry.Private[Snapshot]

    @strawberry.field
    def importing(self) -> bool:
        self.snapshot.reads.append("importing")
        return self.snapshot.importing


def build(events: list[Snapshot]) -> strawberry.Schema:
    @strawberry.type
    class Query:
        ok: bool = True

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def import_progress(self) -> AsyncGenerator[Progress, None]:
            for event in events:
                yield progress_of(event)

        @strawberry.subscription
        async def other(self) -> AsyncGenerator[Progress, None]:
            for event in events:
                yield progress_of(event)

    # Parsed once per text, as the gateway's document checks do (app/graphql/limits.py).
    return strawberry.Schema(
        query=Query,
        subscription=Subscription,
        extensions=[Documents(Limits(10, 30), max_tokens=2000).checks],
        execution_context_class=shared_event_executor(),
    )


# One Progress object per snapshot, as the hub hands every subscriber the same object.
_progress: dict[int, Progress] = {}


def progress_of(event: Snapshot) -> Progress:
    return _progress.setdefault(id(event), Progress(snapshot=event))


async def results(schema: strawberry.Schema, query: str) -> list[object]:
    stream = await schema.subscribe(query)
    return [result.data async for result in stream]  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_subscribers_of_one_document_share_each_event_s_execution() -> None:
    events = [Snapshot(True), Snapshot(False)]
    schema = build(events)
    query = "subscription { importProgress { importing } }"
    many = await asyncio.gather(*(results(schema, query) for _ in range(5)))
    assert all(
        r == [{"importProgress": {"importing": True}}, {"importProgress": {"importing": False}}]
        for r in many
    )
    assert [len(e.reads) for e in events] == [1, 1]
    # Another document over the same events is executed for itself.
    await results(schema, "subscription { importProgress { importing __typename } }")
    assert [len(e.reads) for e in events] == [2, 2]


@pytest.mark.anyio
async def test_other_subscriptions_are_executed_per_subscriber() -> None:
    events = [Snapshot(True)]
    schema = build(events)
    await asyncio.gather(
        *(results(schema, "subscription { other { importing } }") for _ in range(3))
    )
    assert len(events[0].reads) == 3
