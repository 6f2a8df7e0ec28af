"""Which media type a GraphQL answer takes, from the request's Accept header (GraphQL over HTTP,
"Accept" and "Legacy watershed"): `application/graphql-response+json` when the client prefers
it, else `application/json`."""

from __future__ import annotations

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

_MAX_REMEMBERED = 256
_chosen: dict[bytes, str] = {}


def graphql_media_type(accept: bytes | None) -> str:
    """The media type a GraphQL answer is encoded in. No Accept header, `*/*`, `application/*`
    or only types the gateway cannot give mean `application/json`, which every client reads."""
    if accept is None:
        return JSON
    chosen = _chosen.get(accept)
    if chosen is None:
        chosen = _choose(accept.decode("latin-1"))
        if len(_chosen) >= _MAX_REMEMBERED:
            _chosen.clear()  # a client cycling through headers only loses the memo
        _chosen[accept] = chosen
    return chosen


def _choose(accept: str) -> str:
    best, best_quality = JSON, 0.0
    for entry in accept.split(","):
        media, _, parameters = entry.partition(";")
        media = media.strip().lower()
        if media not in (GRAPHQL_RESPONSE, JSON):
            continue
        quality = _quality(parameters)
        # Of equal weights the type listed first wins; q=0 means "not this one".
        if quality > best_quality:
            best, best_quality = media, quality
    return best


def _quality(parameters: str) -> float:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0
