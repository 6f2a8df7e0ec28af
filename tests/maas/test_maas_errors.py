"""map_failure: MAAS responses and transport errors to the gateway's errors (maas-api.md §4)."""

from __future__ import annotations

import email.utils
import time

import httpx
import orjson
import pydantic
import pytest

from app.core.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationFailed,
)
from app.maas import map_failure
from app.maas.errors import parse_retry_after
from app.maas.models import BootResource

OP = "boot-resources read"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json; charset=utf-8"


def response(
    status: int, body: bytes | str = b"", content_type: str = TEXT, **headers: str
) -> httpx.Response:
    raw = body.encode() if isinstance(body, str) else body
    return httpx.Response(status, content=raw, headers={"Content-Type": content_type, **headers})


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, ValidationFailed),
        (401, Unauthenticated),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, PayloadTooLarge),
        (500, UpstreamBadResponse),
        (502, UpstreamBadResponse),
        (503, UpstreamUnavailable),
        (504, UpstreamTimeout),
        (405, UpstreamBadResponse),
        (302, UpstreamBadResponse),
    ],
)
def test_status_maps_to_its_gateway_error(status: int, expected: type[GatewayError]) -> None:
    error = map_failure(OP, response(status, "why"))

    assert type(error) is expected
    assert error.message == f"MAAS {OP} failed (HTTP {status}): why"
    assert error.details["upstream_status"] == status


def test_json_field_map_becomes_validation_fields() -> None:
    body = orjson.dumps(
        {
            "sha256": ["Ensure this value has at least 64 characters (it has 10)."],
            "__all__": ["One of keyring_data or keyring_filename must be specified."],
        }
    )

    error = map_failure("boot-resources create", response(400, body, JSON))

    assert isinstance(error, ValidationFailed)
    assert error.fields == {
        "sha256": ["Ensure this value has at least 64 characters (it has 10)."],
        "__all__": ["One of keyring_data or keyring_filename must be specified."],
    }
    assert "sha256: Ensure this value" in error.message
    assert "One of keyring_data" in error.message


def test_json_list_becomes_a_message_without_fields() -> None:
    error = map_failure(OP, response(400, b'["first problem", "second problem"]', JSON))

    assert isinstance(error, ValidationFailed)
    assert error.fields == {}
    assert error.message.endswith(": first problem; second problem")


def test_text_400_becomes_a_message_without_fields() -> None:
    body = "'bogus' is not a valid boot resource type. Available types: ['synced', 'uploaded']"

    error = map_failure(OP, response(400, body))

    assert isinstance(error, ValidationFailed)
    assert error.fields == {}
    assert error.message.endswith(body)


def test_html_409_keeps_retry_after_and_drops_the_page() -> None:
    page = "<!DOCTYPE html><html><body><h1>409 Conflict</h1></body></html>"

    error = map_failure(OP, response(409, page, "text/html; charset=utf-8", **{"Retry-After": "5"}))

    assert isinstance(error, Conflict)
    assert error.retry_after == 5.0
    assert error.message == f"MAAS {OP} failed (HTTP 409)"


def test_an_xhtml_page_is_dropped_like_an_html_one() -> None:
    page = "<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'><body/></html>"

    error = map_failure(OP, response(502, page, "application/xhtml+xml"))

    assert error.message == f"MAAS {OP} failed (HTTP 502)"


def test_html_typed_401_with_plain_text_keeps_its_message() -> None:
    # Piston's OAuth errors are bare HttpResponses: text/html typed, plain text (§2.3).
    error = map_failure(OP, response(401, "Authorization Error: Invalid API key.", "text/html"))

    assert isinstance(error, Unauthenticated)
    assert error.message.endswith("Authorization Error: Invalid API key.")


def test_credentials_and_origin_in_a_body_are_redacted() -> None:
    body = "Authorization Error: 'Invalid access token: TokenKey123' from http://maas.test:5240"

    error = map_failure(OP, response(401, body), redact=("TokenKey123", "http://maas.test:5240"))

    assert "TokenKey123" not in error.message
    assert "maas.test" not in error.message
    assert error.message.count("[redacted]") == 2


def test_redaction_reaches_validation_fields() -> None:
    body = orjson.dumps({"url": ["secret123 is wrong"]})

    error = map_failure(OP, response(400, body, JSON), redact=("secret123",))

    assert isinstance(error, ValidationFailed)
    assert error.fields == {"url": ["[redacted] is wrong"]}


def test_long_bodies_are_truncated() -> None:
    error = map_failure(OP, response(500, "x" * 10_000))

    assert error.message == f"MAAS {OP} failed (HTTP 500): " + "x" * 499 + "…"


@pytest.mark.parametrize(("length", "shown"), [(500, "x" * 500), (501, "x" * 499 + "…")])
def test_a_message_is_cut_only_past_500_characters(length: int, shown: str) -> None:
    error = map_failure(OP, response(502, "x" * length))

    assert error.message == f"MAAS {OP} failed (HTTP 502): {shown}"


def test_malformed_json_error_body_still_maps_by_status() -> None:
    error = map_failure(OP, response(400, b"{not json", JSON))

    assert isinstance(error, ValidationFailed)
    assert error.message.endswith("{not json")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("boom"), UpstreamTimeout),
        (httpx.ReadTimeout("boom"), UpstreamTimeout),
        (httpx.WriteTimeout("boom"), UpstreamTimeout),
        (httpx.PoolTimeout("boom"), UpstreamTimeout),
        (httpx.ConnectError("boom"), UpstreamUnavailable),
        (httpx.WriteError("boom"), UpstreamUnavailable),
        (httpx.RemoteProtocolError("boom"), UpstreamBadResponse),
        (httpx.ReadError("boom"), UpstreamBadResponse),
        (httpx.DecodingError("boom"), UpstreamBadResponse),
        (orjson.JSONDecodeError("bad", "{", 0), UpstreamBadResponse),
    ],
)
def test_exception_maps_to_its_gateway_error(
    exc: BaseException, expected: type[GatewayError]
) -> None:
    error = map_failure(OP, exc)

    assert type(error) is expected
    assert error.message.startswith(f"MAAS {OP} failed: ")


def test_transport_error_text_is_not_shown() -> None:
    exc = httpx.ConnectError("Cannot connect to host maas.internal:5240 ssl:default")

    error = map_failure(OP, exc)

    assert "maas.internal" not in error.message
    assert error.message == f"MAAS {OP} failed: could not connect"


def test_payload_of_the_wrong_shape_is_a_bad_response() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        BootResource.model_validate({"id": "seven"})

    error = map_failure(OP, caught.value)

    assert isinstance(error, UpstreamBadResponse)
    assert "id:" in error.message
    assert "seven" not in error.message


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)

    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("inf") is None
    seconds = parse_retry_after(later)
    assert seconds is not None
    assert 25 < seconds <= 30


def test_field_messages_and_general_ones_read_as_one_summary() -> None:
    body = {"__all__": ["Both given.", "Pick one."], "url": "not a URL", "name": ["a", "b"]}

    error = map_failure(OP, response(400, orjson.dumps(body), "application/problem+json"))

    assert isinstance(error, ValidationFailed)
    assert (
        error.message
        == f"MAAS {OP} failed (HTTP 400): Both given. Pick one.; url: not a URL; name: a b"
    )
    assert error.fields == {
        "__all__": ["Both given.", "Pick one."],
        "url": ["not a URL"],
        "name": ["a", "b"],
    }


def test_a_json_string_body_is_its_message() -> None:
    error = map_failure(OP, response(404, b'"No BootResource matches the given query."', JSON))

    assert error.message == f"MAAS {OP} failed (HTTP 404): No BootResource matches the given query."


def test_a_body_without_a_content_type_or_in_broken_utf8_is_read_as_text() -> None:
    untyped = httpx.Response(500, content=b"plain trouble")
    broken = response(500, b"caf\xe9 down")

    assert "content-type" not in untyped.headers
    assert map_failure(OP, untyped).message == f"MAAS {OP} failed (HTTP 500): plain trouble"
    assert map_failure(OP, broken).message == f"MAAS {OP} failed (HTTP 500): caf\ufffd down"


@pytest.mark.parametrize(
    ("exc", "what"),
    [
        (httpx.ConnectTimeout("boom"), "timed out connecting"),
        (httpx.ReadTimeout("boom"), "timed out waiting for the response"),
        (httpx.WriteTimeout("boom"), "timed out sending the request"),
        (httpx.PoolTimeout("boom"), "timed out waiting for a free connection"),
        (httpx.TimeoutException("boom"), "timed out"),
        (RuntimeError("maas.internal:5240"), "RuntimeError"),
    ],
)
def test_a_transport_failure_says_what_timed_out_or_failed(exc: BaseException, what: str) -> None:
    assert map_failure(OP, exc).message == f"MAAS {OP} failed: {what}"


def test_a_payload_of_the_wrong_shape_names_at_most_five_problems() -> None:
    files = {str(n): {"size": "big"} for n in range(7)}
    with pytest.raises(pydantic.ValidationError) as caught:
        pydantic.TypeAdapter(dict[str, dict[str, int]]).validate_python(files)
    with pytest.raises(pydantic.ValidationError) as whole:
        BootResource.model_validate("not an object")

    many, root = map_failure(OP, caught.value), map_failure(OP, whole.value)

    problem = "Input should be a valid integer, unable to parse string as an integer"
    listed = "; ".join(f"{n}.size: {problem}" for n in range(5))
    assert many.message == f"MAAS {OP} failed: unexpected payload ({listed})"
    assert root.message.startswith(f"MAAS {OP} failed: unexpected payload (body: Input should")


def test_retry_after_is_never_negative_and_zero_is_zero() -> None:
    earlier = email.utils.formatdate(time.time() - 30, usegmt=True)

    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(earlier) == 0.0
    assert parse_retry_after(" 2.5 ") == 2.5
