"""OAuth 1.0a checks: the header, the parameters' other homes, and each failure's exact answer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest

from app.cli.server import BackgroundServer

from .helpers import API, Maas, keys, oauth_header

RESOURCES = API + "boot-resources/"


def _get(client: Maas, header: str | None, **kwargs: object) -> tuple[int, str, dict[str, str]]:
    headers = {"Authorization": header} if header is not None else {}
    response = client.get(RESOURCES, sign=False, headers=headers, **kwargs)  # type: ignore[arg-type]
    return response.status_code, response.text, dict(response.headers)


def test_request_without_credentials_is_challenged_with_401(anon: Maas) -> None:
    status, body, headers = _get(anon, None)

    assert (status, body) == (401, "Forbidden")
    assert headers["content-type"] == "text/plain"


def test_libmaas_header_authenticates(admin: Maas) -> None:
    assert admin.get("boot-resources/").status_code == 200


def test_unknown_consumer_key_is_invalid_api_key(anon: Maas, simulator: BackgroundServer) -> None:
    admin_key = keys(simulator.url)[0]
    _, token, secret = admin_key.split(":")

    status, body, headers = _get(anon, oauth_header(f"NoSuchConsumerKey1:{token}:{secret}"))

    assert (status, body) == (401, "Authorization Error: Invalid API key.")
    assert headers["www-authenticate"] == 'OAuth realm="OAuth"'
    assert headers["content-type"] == "text/html; charset=utf-8"


def test_unknown_token_is_invalid_access_token(anon: Maas, simulator: BackgroundServer) -> None:
    consumer, _, secret = keys(simulator.url)[0].split(":")

    status, body, _ = _get(anon, oauth_header(f"{consumer}:NoSuchTokenKey0001:{secret}"))

    assert status == 401
    assert body == "Authorization Error: 'Invalid access token: NoSuchTokenKey0001'"


def test_wrong_signature_is_rejected(anon: Maas, simulator: BackgroundServer) -> None:
    admin_key = keys(simulator.url)[0]

    status, body, _ = _get(anon, oauth_header(admin_key, signature="&not-the-secret"))

    assert status == 401
    assert body.startswith("Authorization Error: 'Invalid signature. Expected signature base")


def test_timestamp_older_than_300_seconds_is_expired(
    anon: Maas, simulator: BackgroundServer
) -> None:
    admin_key = keys(simulator.url)[0]
    stale = int(time.time()) - 301

    status, body, _ = _get(anon, oauth_header(admin_key, timestamp=stale))

    assert status == 401
    assert body.startswith(f"Authorization Error: 'Expired timestamp: given {stale} and now ")
    assert body.endswith("has a greater difference than threshold 300'")


def test_timestamp_in_the_future_is_accepted(anon: Maas, simulator: BackgroundServer) -> None:
    admin_key = keys(simulator.url)[0]

    status, _, _ = _get(anon, oauth_header(admin_key, timestamp=int(time.time()) + 3600))

    assert status == 200


def test_reused_nonce_is_rejected(anon: Maas, simulator: BackgroundServer) -> None:
    admin_key = keys(simulator.url)[0]

    first = _get(anon, oauth_header(admin_key, nonce="4242"))
    second = _get(anon, oauth_header(admin_key, nonce="4242"))

    assert first[0] == 200
    assert second[:2] == (401, "Authorization Error: 'Nonce already used: 4242'")


def test_same_nonce_under_another_token_is_fine(anon: Maas, simulator: BackgroundServer) -> None:
    admin_key, user_key = keys(simulator.url)

    assert _get(anon, oauth_header(admin_key, nonce="77"))[0] == 200
    assert _get(anon, oauth_header(user_key, nonce="77"))[0] == 200


def test_realm_segment_is_skipped_whatever_it_says(anon: Maas, simulator: BackgroundServer) -> None:
    header = oauth_header(keys(simulator.url)[0], realm="MAAS API")

    assert _get(anon, header)[0] == 200


def test_oauth_parameters_in_the_query_string_authenticate(
    anon: Maas, simulator: BackgroundServer
) -> None:
    consumer, token, secret = keys(simulator.url)[0].split(":")
    params = {
        "oauth_consumer_key": consumer,
        "oauth_token": token,
        "oauth_signature_method": "PLAINTEXT",
        "oauth_signature": "&" + secret,
        "oauth_timestamp": str(int(time.time())),
        "oauth_nonce": "q-1",
    }

    assert _get(anon, None, params=params)[0] == 200


def test_oauth_parameters_in_a_form_body_authenticate(
    anon: Maas, simulator: BackgroundServer
) -> None:
    consumer, token, secret = keys(simulator.url)[0].split(":")
    fields = [
        ("oauth_consumer_key", consumer),
        ("oauth_token", token),
        ("oauth_signature_method", "PLAINTEXT"),
        ("oauth_signature", "&" + secret),
        ("oauth_timestamp", str(int(time.time()))),
        ("oauth_nonce", "form-1"),
    ]

    response = anon.post(RESOURCES, params={"op": "stop_import"}, fields=fields)

    assert response.status_code == 200
    assert response.text == "Import of boot resources is being stopped"


def test_header_without_oauth_prefix_is_the_piston_500_when_before_3_8(
    anon: Maas, simulator: BackgroundServer
) -> None:
    header = oauth_header(keys(simulator.url)[0]).replace("OAuth ", "Bearer ", 1)

    # ≤3.7 only needs the names to appear in the header, then finds no OAuth request.
    status, body, _ = _get(anon, header)

    assert (status, body) == (500, "'NoneType' object has no attribute 'verify_request'")


def test_header_without_oauth_prefix_is_a_challenge_when_3_8(
    maas_for: Callable[..., tuple[Maas, Maas]],
) -> None:
    admin, _ = maas_for(maas_version="3.8")
    assert admin.key is not None
    header = oauth_header(admin.key).replace("OAuth ", "Bearer ", 1)

    response = admin.get("boot-resources/", sign=False, headers={"Authorization": header})

    assert (response.status_code, response.text) == (401, "Forbidden")


def test_hmac_sha1_signature_is_verified(anon: Maas, simulator: BackgroundServer) -> None:
    consumer, token, secret = keys(simulator.url)[0].split(":")
    params = {
        "oauth_consumer_key": consumer,
        "oauth_token": token,
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": str(int(time.time())),
        "oauth_nonce": "hmac-1",
        "oauth_version": "1.0",
        "type": "uploaded",
    }
    url = f"{simulator.url}{RESOURCES}"

    def escape(value: str) -> str:
        return quote(value, safe="~")

    normalized = "&".join(f"{escape(k)}={escape(v)}" for k, v in sorted(params.items()))
    base = "&".join(("GET", escape(url), escape(normalized)))
    digest = hmac.new(f"&{secret}".encode(), base.encode(), hashlib.sha1).digest()
    signature = base64.b64encode(digest).decode()
    header = ", ".join(f'{k}="{escape(v)}"' for k, v in params.items() if k.startswith("oauth_"))

    status, _, _ = _get(
        anon,
        f'OAuth realm="OAuth", {header}, oauth_signature="{escape(signature)}"',
        params={"type": "uploaded"},
    )

    assert status == 200


def test_unsupported_signature_method_is_rejected(anon: Maas, simulator: BackgroundServer) -> None:
    status, body, _ = _get(anon, oauth_header(keys(simulator.url)[0], method="RSA-SHA1"))

    assert status == 401
    assert body == (
        "Authorization Error: 'Signature method RSA-SHA1 not supported try one of the "
        "following: PLAINTEXT, HMAC-SHA1'"
    )


def test_oauth_version_other_than_1_0_is_rejected(anon: Maas, simulator: BackgroundServer) -> None:
    header = oauth_header(keys(simulator.url)[0]).replace('"1.0"', '"2.0"')

    assert _get(anon, header)[:2] == (
        401,
        "Authorization Error: 'OAuth version 2.0 not supported.'",
    )


def test_non_integer_timestamp_is_a_500_when_before_3_8(
    anon: Maas, simulator: BackgroundServer
) -> None:
    header = _with_timestamp(oauth_header(keys(simulator.url)[0]), "soon")

    status, body, _ = _get(anon, header)

    assert (status, body) == (500, "invalid literal for int() with base 10: 'soon'")


def _with_timestamp(header: str, value: str) -> str:
    start = header.index('oauth_timestamp="') + len('oauth_timestamp="')
    end = header.index('"', start)
    return header[:start] + value + header[end:]


def test_non_integer_timestamp_is_a_400_when_3_8(
    maas_for: Callable[..., tuple[Maas, Maas]],
) -> None:
    admin, _ = maas_for(maas_version="3.8")
    assert admin.key is not None

    response = admin.get(
        "boot-resources/",
        sign=False,
        headers={"Authorization": _with_timestamp(oauth_header(admin.key), "soon")},
    )

    assert response.status_code == 400
    # MAAS renders the message's repr(), quotes included.
    assert response.text[0] == response.text[-1] == '"'
    assert response.text[1:].startswith("Bad Request: the following problems were found among")
    assert "('oauth_timestamp', <ParamIssue.UNEXPECTED_TYPE: 'unexpected type'>)" in response.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_every_method_needs_credentials(anon: Maas, method: str) -> None:
    response = anon.request(method, "boot-resources/1/")

    assert (response.status_code, response.text) == (401, "Forbidden")
