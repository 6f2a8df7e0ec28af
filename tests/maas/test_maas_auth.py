"""MaasCredentials and the OAuth PLAINTEXT signer (maas-api.md §2)."""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

import httpx
import pytest
from maas_support import ADMIN_KEY, USER_KEY

from app.maas import MaasAuth, MaasCredentials

HEADER = re.compile(r'^OAuth realm="MAAS API", (?P<params>.*)$')


def parse_header(value: str) -> dict[str, str]:
    """The server's reading of the header: comma-split k="v" pairs, unquoted (§2.2)."""
    match = HEADER.match(value)
    assert match, value
    params = {}
    for segment in match["params"].split(", "):
        name, _, quoted = segment.partition("=")
        assert quoted.startswith('"'), segment
        assert quoted.endswith('"'), segment
        params[name] = unquote(quoted[1:-1])
    return params


def sign(auth: MaasAuth) -> httpx.Request:
    request = httpx.Request("GET", "http://maas.test/MAAS/api/2.0/boot-resources/")
    return next(auth.sync_auth_flow(request))


def test_from_key_splits_the_three_parts() -> None:
    creds = MaasCredentials.from_key(ADMIN_KEY)

    assert (creds.consumer_key, creds.token_key, creds.token_secret) == tuple(ADMIN_KEY.split(":"))


@pytest.mark.parametrize("key", ["", "a:b", "a:b:c:d", "a::c", " : : "])
def test_from_key_rejects_a_malformed_key(key: str) -> None:
    with pytest.raises(ValueError, match="three non-empty parts"):
        MaasCredentials.from_key(key)


def test_repr_and_str_never_show_the_secret_or_token() -> None:
    creds = MaasCredentials.from_key(ADMIN_KEY)

    for text in (repr(creds), str(creds), repr(MaasAuth(creds)), f"{creds}"):
        assert creds.token_secret not in text
        assert creds.token_key not in text
        assert creds.fingerprint in text


def test_fingerprint_is_stable_and_distinguishes_keys() -> None:
    admin = MaasCredentials.from_key(ADMIN_KEY)

    assert admin.fingerprint == MaasCredentials.from_key(ADMIN_KEY).fingerprint
    assert admin.fingerprint != MaasCredentials.from_key(USER_KEY).fingerprint
    assert re.fullmatch(r"[0-9a-f]{32}", admin.fingerprint)
    assert not any(part in admin.fingerprint for part in ADMIN_KEY.split(":"))


def test_header_has_the_shape_maas_parses() -> None:
    creds = MaasCredentials.from_key(ADMIN_KEY)

    params = parse_header(sign(MaasAuth(creds)).headers["Authorization"])

    assert params.pop("oauth_nonce")
    assert abs(int(params.pop("oauth_timestamp")) - time.time()) < 5
    assert params == {
        "oauth_consumer_key": creds.consumer_key,
        "oauth_token": creds.token_key,
        "oauth_signature_method": "PLAINTEXT",
        "oauth_signature": f"&{creds.token_secret}",
        "oauth_version": "1.0",
    }


def test_header_sends_the_signature_percent_encoded() -> None:
    creds = MaasCredentials.from_key(ADMIN_KEY)

    header = sign(MaasAuth(creds)).headers["Authorization"]

    assert f'oauth_signature="%26{creds.token_secret}"' in header


def test_signature_escapes_reserved_characters_in_the_secret() -> None:
    creds = MaasCredentials("ck", "tk", "s&c=t")

    params = parse_header(creds.authorization(nonce="n", timestamp=1))

    # The server unquotes the header once and compares with "&" + escape(secret).
    assert params["oauth_signature"] == "&s%26c%3Dt"


def test_every_request_gets_a_fresh_nonce() -> None:
    auth = MaasAuth(MaasCredentials.from_key(ADMIN_KEY))

    nonces = {parse_header(sign(auth).headers["Authorization"])["oauth_nonce"] for _ in range(50)}

    assert len(nonces) == 50
