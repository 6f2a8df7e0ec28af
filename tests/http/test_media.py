"""The media type of a GraphQL answer, chosen from Accept headers as clients send them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.http.media import GRAPHQL_RESPONSE, JSON, graphql_media_type


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        # Apollo Client 4's HttpLink, then with @defer, then urql and graphql-request.
        (b"application/graphql-response+json,application/json;q=0.9", GRAPHQL_RESPONSE),
        (
            b"multipart/mixed;deferSpec=20220824,application/graphql-response+json,"
            b"application/json;q=0.9",
            GRAPHQL_RESPONSE,
        ),
        (
            b"application/graphql-response+json, application/graphql+json, application/json, "
            b"text/event-stream, multipart/mixed",
            GRAPHQL_RESPONSE,
        ),
        (b"application/json", JSON),
        (b"Application/GraphQL-Response+JSON", GRAPHQL_RESPONSE),
        (b"application/json, application/graphql-response+json", JSON),
        (b"application/json;q=0.2, application/graphql-response+json;q=0.3", GRAPHQL_RESPONSE),
        (b"application/graphql-response+json;q=nonsense, application/json;q=0.1", JSON),
        (b"application/graphql-response+json;q=0", JSON),
        (b"*/*", JSON),
        (b"", JSON),
        (None, JSON),
    ],
)
def test_the_preferred_type_is_chosen(accept: bytes | None, chosen: str) -> None:
    assert graphql_media_type(accept) == chosen


@given(st.binary(max_size=200))
def test_any_header_chooses_one_of_the_two(accept: bytes) -> None:
    assert graphql_media_type(accept) in (GRAPHQL_RESPONSE, JSON)
