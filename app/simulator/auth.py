"""OAuth 1.0a checks as MAAS's piston performs them: PLAINTEXT/HMAC-SHA1, timestamp, nonce."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, unquote

from app.simulator.config import MaasVersion, split_api_key
from app.simulator.parsing import FormData
from app.simulator.responses import (
    Challenge,
    OAuthBadRequest,
    OAuthUnauthorized,
    ServerError,
)

REQUIRED_PARAMS: tuple[str, ...] = (
    "oauth_consumer_key",
    "oauth_token",
    "oauth_signature",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_nonce",
)
# piston's OAuthServer.timestamp_threshold (maas-api.md §2.2).
TIMESTAMP_THRESHOLD = 300
SIGNATURE_METHODS: tuple[str, ...] = ("PLAINTEXT", "HMAC-SHA1")


@dataclass(frozen=True, slots=True)
class User:
    username: str
    is_superuser: bool
    consumer_key: str
    token_key: str
    token_secret: str


class Credentials:
    """The simulator's two MAAS users and their API keys (consumer secret is always empty)."""

    def __init__(self, admin_key: str, user_key: str) -> None:
        self.by_consumer: dict[str, User] = {}
        self.by_token: dict[str, User] = {}
        for username, key, superuser in (("admin", admin_key, True), ("user", user_key, False)):
            consumer, token, secret = split_api_key(key)
            user = User(username, superuser, consumer, token, secret)
            self.by_consumer[consumer] = user
            self.by_token[token] = user


class NonceStore:
    """Nonces seen per (consumer, token), as piston's store records them."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str], float] = {}
        self._inserts = 0

    def seen_before(self, consumer: str, token: str, nonce: str, now: float) -> bool:
        """Record the nonce; True if it was already used."""
        key = (consumer, token, nonce)
        if key in self._seen:
            return True
        self._seen[key] = now
        self._inserts += 1
        if self._inserts % 4096 == 0:
            # Like MAAS's nonces_cleanup: a nonce older than the timestamp window can go,
            # a replay of it fails the timestamp check anyway.
            horizon = now - 2 * TIMESTAMP_THRESHOLD
            self._seen = {k: t for k, t in self._seen.items() if t >= horizon}
        return False


def _escape(value: str) -> str:
    return quote(value, safe="~")


def split_oauth_header(header: str) -> dict[str, str]:
    """piston's OAuthRequest._split_header: comma-separated k="v", realm skipped, unescaped."""
    params: dict[str, str] = {}
    for segment in header.split(","):
        if "realm" in segment:
            continue
        key, sep, value = segment.strip().partition("=")
        if not sep:
            raise OAuthUnauthorized("Unable to parse OAuth parameters from Authorization header.")
        params[key] = unquote(value.strip('"'))
    return params


def _maas_auth_params(header: str) -> dict[str, str] | None:
    """MAAS 3.8's parse_auth_params, used only to judge whether a request is OAuth at all."""
    header = header.strip()
    if not header.startswith("OAuth"):
        return None
    params: dict[str, str] = {}
    for segment in header.lstrip("OAuth").strip().split(","):
        key, sep, value = segment.strip().partition("=")
        if sep:
            params[key.strip()] = value.strip().strip('"')
    return params


def _problems(params: dict[str, str]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for name in REQUIRED_PARAMS:
        value = params.get(name)
        if value is None:
            problems[name] = "missing"
        elif name == "oauth_timestamp":
            try:
                int(value)
            except ValueError:
                problems[name] = "unexpected type"
    return problems


def _last_values(form: FormData | None) -> dict[str, str]:
    if form is None:
        return {}
    return {name: values[-1] for name, values in form.fields.items() if values}


def _is_oauth_request(
    header: str,
    query: dict[str, str],
    post: dict[str, str],
    version: MaasVersion,
) -> bool:
    if version.typed_oauth_bad_request:
        parsed = _maas_auth_params(header)
        header_problems = {"OAuth": "missing"} if parsed is None else _problems(parsed)
        query_problems = _problems(query)
        post_problems = _problems(post)
        if not (header_problems and query_problems and post_problems):
            return True
        issues = [*header_problems.items(), *query_problems.items(), *post_problems.items()]
        if any(problem == "unexpected type" for _, problem in issues):
            raise OAuthBadRequest(_problem_report(header_problems, query_problems, post_problems))
        return False
    # piston's is_valid_request: every name appears in the raw header text, or in the params.
    merged = {**query, **post}
    return all(name in header for name in REQUIRED_PARAMS) or all(
        name in merged for name in REQUIRED_PARAMS
    )


def _problem_report(header: dict[str, str], query: dict[str, str], post: dict[str, str]) -> str:
    def listing(problems: dict[str, str]) -> str:
        # str() of MAAS's (name, ParamIssue) tuples shows the enum's repr.
        return ", ".join(
            f"({name!r}, <ParamIssue.{issue.upper().replace(' ', '_')}: {issue!r}>)"
            for name, issue in problems.items()
        )

    if header != {"OAuth": "missing"}:
        auth = f"the following problems were found among the auth params: {listing(header)}"
    else:
        auth = "missing starting 'OAuth' from 'Authentication' header"
    return "; ".join(
        (
            auth,
            f"the following problems were found among the query params: {listing(query)}",
            f"the following problems were found among the query params: {listing(post)}",
        )
    )


def _plaintext_signature(token_secret: str) -> str:
    # The consumer secret is hard-wired to "" in MAAS (maas-api.md §2.1).
    return _escape("") + "&" + _escape(token_secret)


def _hmac_base_string(method: str, url: str, params: dict[str, str]) -> str:
    pairs = sorted((k, v) for k, v in params.items() if k != "oauth_signature")
    normalized = "&".join(f"{_escape(k)}={_escape(v)}" for k, v in pairs)
    return "&".join((_escape(method.upper()), _escape(url), _escape(normalized)))


def _oauth_params(
    authorization: str, query: dict[str, str], post: dict[str, str]
) -> dict[str, str]:
    """The OAuth parameters: POST fields, overridden by the header's, then by the query's."""
    params: dict[str, str] = dict(post)
    if authorization[:6] == "OAuth ":
        params.update(split_oauth_header(authorization[6:]))
    params.update(query)
    if not params:
        # piston's from_request returns no request, and validate_token calls a method on
        # None: a 500 (≤3.7 judges "is OAuth" by the names appearing anywhere in the header).
        raise ServerError("'NoneType' object has no attribute 'verify_request'")
    return params


def _identify(params: dict[str, str], credentials: Credentials) -> tuple[User, User]:
    """(consumer's owner, token's owner) after the version and required-parameter checks."""
    oauth_version = params.get("oauth_version")
    if oauth_version and oauth_version != "1.0":
        raise OAuthUnauthorized(f"OAuth version {oauth_version} not supported.")
    for name in ("oauth_consumer_key", "oauth_token", "oauth_timestamp", "oauth_nonce"):
        if name not in params:
            raise OAuthUnauthorized(f"Parameter not found: {name}")
    consumer = credentials.by_consumer.get(params["oauth_consumer_key"])
    if consumer is None:
        raise OAuthUnauthorized("Invalid consumer.")
    user = credentials.by_token.get(params["oauth_token"])
    if user is None:
        raise OAuthUnauthorized(f"Invalid access token: {params['oauth_token']}")
    return consumer, user


def _check_freshness(
    params: dict[str, str], consumer: User, user: User, nonces: NonceStore, now: float
) -> None:
    """The timestamp must be within the threshold and the nonce new for this consumer/token."""
    try:
        timestamp = int(params["oauth_timestamp"])
    except ValueError as exc:
        # ≤3.7 let int() raise inside piston: the middleware answers 500 (maas-api.md §2.3).
        raise ServerError(str(exc)) from exc
    current = int(now)
    if current - timestamp > TIMESTAMP_THRESHOLD:
        raise OAuthUnauthorized(
            f"Expired timestamp: given {timestamp} and now {current} has a greater "
            f"difference than threshold {TIMESTAMP_THRESHOLD}"
        )
    nonce = params["oauth_nonce"]
    if nonces.seen_before(consumer.consumer_key, user.token_key, nonce, now):
        raise OAuthUnauthorized(f"Nonce already used: {nonce}")


def _check_signature(method: str, absolute_url: str, params: dict[str, str], user: User) -> None:
    signature_method = params.get("oauth_signature_method")
    if signature_method is None:
        raise OAuthUnauthorized("Parameter not found: oauth_signature_method")
    if signature_method not in SIGNATURE_METHODS:
        raise OAuthUnauthorized(
            f"Signature method {signature_method} not supported try one of the following: "
            + ", ".join(SIGNATURE_METHODS)
        )
    signature = params.get("oauth_signature")
    if signature is None:
        raise OAuthUnauthorized("Parameter not found: oauth_signature")
    if signature_method == "PLAINTEXT":
        expected = base = _plaintext_signature(user.token_secret)
    else:
        base = _hmac_base_string(method, absolute_url, params)
        key = _plaintext_signature(user.token_secret).encode("utf-8")
        digest = hmac.new(key, base.encode("utf-8"), hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode("ascii")
    if not hmac.compare_digest(signature.encode("utf-8"), expected.encode("utf-8")):
        raise OAuthUnauthorized(f"Invalid signature. Expected signature base string: {base}")


def authenticate(
    *,
    method: str,
    absolute_url: str,
    authorization: str,
    query: FormData,
    post: FormData | None,
    credentials: Credentials,
    nonces: NonceStore,
    version: MaasVersion,
    now: float,
) -> User:
    """Return the signed-in user, or raise the 401/400/500 MAAS would answer with.

    The order of checks is piston's `verify_request`: version, consumer, token, timestamp,
    nonce (recorded even if the signature then fails), signature method, signature.
    """
    query_params = _last_values(query)
    post_params = _last_values(post)
    if not _is_oauth_request(authorization, query_params, post_params, version):
        raise Challenge()
    params = _oauth_params(authorization, query_params, post_params)
    consumer, user = _identify(params, credentials)
    _check_freshness(params, consumer, user, nonces, now)
    _check_signature(method, absolute_url, params, user)
    return user
