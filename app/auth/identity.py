"""Who is calling: turns an incoming request into the caller whose credential signs upstream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cachetools import TTLCache
from starlette.requests import HTTPConnection
from starlette.types import Scope as ASGIScope

from app.auth.messages import UNAUTHENTICATED_MESSAGE
from app.auth.rate_limits import Limit, SharedCounter
from app.auth.tokens import TokenStore
from app.core.errors import Forbidden, RateLimited, Unauthenticated
from app.core.permissions import Permission, format_permissions, parse_permissions
from app.core.settings import Settings
from app.maas.auth import MaasCredentials
from app.maas.client import MaasClient
from app.service import Caller

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
# Where admission leaves the identity it resolved, so later layers need not resolve it again.
IDENTITY_KEY = "maas_gateway.identity"
# In passthrough mode MAAS decides what a key may do; the gateway's own admin scope (schema
# introspection when it is switched off) belongs to service-mode tokens.
PASSTHROUGH_SCOPES = frozenset({Permission.READ, Permission.WRITE})
MAX_CACHED_KEYS = 4096


@dataclass(frozen=True, slots=True)
class Identity:
    """A resolved caller: `caller` reads and writes MAAS, `scopes` say what it may ask for."""

    caller: Caller
    name: str
    scopes: frozenset[Permission]
    verified: bool = True
    """False for anonymous callers: nobody showed a credential."""

    def allows(self, scope: Permission) -> bool:
        return scope in self.scopes

    def require(self, scope: Permission) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this needs the {scope.value} scope", details={"scope": scope.value})


def unauthenticated() -> Unauthenticated:
    return Unauthenticated(UNAUTHENTICATED_MESSAGE)


def authorization_of(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The request's Authorization header; raises Unauthenticated when it comes twice, since
    then no one can say which credential the caller meant (RFC 9110 allows it once)."""
    found: bytes | None = None
    for name, value in headers:
        if name == b"authorization":
            if found is not None:
                raise unauthenticated()
            found = value
    return found


class CallerResolver:
    """Resolves callers for REST, GraphQL and websockets alike; set up by the app's lifespan.

    service mode: a bearer token from the tokens file (or anonymous, with the scopes the
    settings grant) acts through the gateway's own MAAS client; the principal is the token's
    hash prefix, so answers are never shared across tokens. passthrough mode: the bearer
    credential is the caller's own MAAS API key; the principal is the key's fingerprint.
    """

    def __init__(
        self, settings: Settings, probe: Callable[[Caller], Awaitable[object]] | None = None
    ) -> None:
        self.mode = settings.auth_mode
        # In passthrough mode: one cheap read MAAS answers for any real key (maas-api.md §4.4),
        # and the keys it answered, by fingerprint, for a bounded time.
        self._probe = probe
        self._confirmed: TTLCache[str, bool] = TTLCache(
            MAX_CACHED_KEYS, settings.passthrough_key_ttl
        )
        self.anonymous_scopes = parse_permissions(settings.anonymous_scopes)
        self.tokens = TokenStore(settings.tokens_file) if settings.tokens_file else None
        self.limiter = (
            Limit("requests", settings.rate_limit_per_second, settings.rate_limit_burst)
            if settings.rate_limit_per_second > 0
            else None
        )
        # A cost budget: the estimated MAAS reads a principal may spend per window.
        self.budget = (
            Limit("cost", settings.cost_budget / settings.cost_budget_window, settings.cost_budget)
            if settings.cost_budget > 0
            else None
        )
        # The caller anonymous requests act as in service mode (also the benchmarks' caller).
        self.default: Caller | None = None
        self._maas: MaasClient | None = None
        self._anonymous: Identity | None = None
        self._by_token: dict[str, Identity] = {}
        self._by_key: OrderedDict[str, Identity] = OrderedDict()
        self._by_header: dict[bytes, tuple[Identity, int]] = {}
        self._sighup = False

    # Lifecycle --------------------------------------------------------------------------------

    def start(self, maas: MaasClient) -> None:
        """Bind to the gateway's MAAS client; a tokens file that cannot be read fails start-up."""
        self._maas = maas
        if self.tokens is not None:
            self.tokens.load()
        if self.mode == "service":
            self.default = Caller(principal=ANONYMOUS, maas=maas)
            if self.anonymous_scopes:
                self._anonymous = Identity(
                    self.default, ANONYMOUS, self.anonymous_scopes, verified=False
                )
            self._warn_about_access()
        else:
            log.info("passthrough mode: each caller's own MAAS API key signs its requests")
        # Signal handlers belong to the main thread's loop (not a test's background server),
        # on systems that have SIGHUP.
        if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload_tokens)
            self._sighup = True

    def stop(self) -> None:
        if self._sighup:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        self._by_token.clear()
        self._by_key.clear()
        self._confirmed.clear()
        self._by_header.clear()

    def reload_tokens(self) -> None:
        if self.tokens is not None:
            log.info("reloading gateway tokens (SIGHUP)")
            self.tokens.request_reload()

    def _warn_about_access(self) -> None:
        if self.tokens is None and not self.anonymous_scopes:
            log.warning(
                "no MAAS_GATEWAY_TOKENS_FILE and no MAAS_GATEWAY_ANONYMOUS_SCOPES: every "
                "request to /graphql and /api/v1 will be rejected with 401"
            )
        elif self.anonymous_scopes:
            log.warning(
                "anonymous callers may %s: anyone who can reach the gateway acts with its MAAS key",
                format_permissions(self.anonymous_scopes),
            )

    # Resolution -------------------------------------------------------------------------------

    def identify(self, connection: HTTPConnection) -> Identity:
        """The request's identity, resolved once and kept on the ASGI scope."""
        return self.identify_scope(connection.scope)

    def identify_scope(self, scope: ASGIScope, authorization: bytes | None = None) -> Identity:
        """Like identify, straight from an ASGI scope (admission passes the header it found)."""
        identity: Identity | None = scope.get(IDENTITY_KEY)
        if identity is None:
            if authorization is None:
                authorization = authorization_of(scope["headers"])
            identity = self._from_header(authorization)
            scope[IDENTITY_KEY] = identity
        return identity

    def _from_header(self, raw: bytes | None) -> Identity:
        # The response cache's hit path pays for this on every request: a credential seen
        # before maps straight to its identity until the tokens file changes (its generation).
        # A Python dict's randomised hashing gives a timing attack nothing to aim at.
        if raw is None:
            return self.authenticate(None)
        generation = self.tokens.current() if self.tokens is not None else 0
        known = self._by_header.get(raw)
        if known is not None and known[1] == generation:
            return known[0]
        identity = self.authenticate(raw.decode("latin-1"))
        if len(self._by_header) >= MAX_CACHED_KEYS:
            self._by_header.clear()
        self._by_header[raw] = (identity, generation)
        return identity

    def resolve(self, connection: HTTPConnection) -> Caller:
        return self.identify(connection).caller

    def authenticate(self, authorization: str | None) -> Identity:
        """The identity an `Authorization` header value stands for; raises Unauthenticated."""
        if self._maas is None:
            raise RuntimeError("the gateway has not started")
        if authorization is None:
            if self._anonymous is not None:
                return self._anonymous
            raise unauthenticated()
        # Present but empty is a malformed credential like any other, not anonymity.
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise unauthenticated()
        if self.mode == "passthrough":
            return self._maas_key(credential, self._maas)
        return self._token(credential, self._maas)

    def _token(self, credential: str, maas: MaasClient) -> Identity:
        entry = self.tokens.lookup(credential) if self.tokens is not None else None
        if entry is None:
            raise unauthenticated()
        identity = self._by_token.get(entry.digest)
        if identity is None or identity.scopes != entry.scopes or identity.name != entry.name:
            if len(self._by_token) > 2 * len(self.tokens or ()) + 64:
                self._by_token.clear()  # tokens removed by reloads
            caller = Caller(principal=f"token:{entry.digest[:24]}", maas=maas)
            identity = Identity(caller, entry.name, entry.scopes)
            self._by_token[entry.digest] = identity
        return identity

    def _maas_key(self, credential: str, maas: MaasClient) -> Identity:
        identity = self._by_key.get(credential)
        if identity is not None:
            self._by_key.move_to_end(credential)
            return identity
        try:
            credentials = MaasCredentials.from_key(credential)
        except ValueError:
            raise unauthenticated() from None
        fingerprint = credentials.fingerprint
        caller = Caller(principal=fingerprint, maas=maas.bind(credentials))
        identity = Identity(caller, f"maas-key:{fingerprint[:12]}", PASSTHROUGH_SCOPES)
        self._by_key[credential] = identity
        if len(self._by_key) > MAX_CACHED_KEYS:
            self._by_key.popitem(last=False)
        return identity

    def confirmed(self, caller: Caller) -> bool:
        """Whether the caller's credential is known good without asking MAAS."""
        return self.mode != "passthrough" or caller.principal in self._confirmed

    async def confirm(self, identity: Identity) -> None:
        """In passthrough mode, make sure MAAS takes the caller's key before anything is done
        for it: until then a made-up key could make the gateway parse and validate documents
        for free. Raises Unauthenticated for a key MAAS refuses, or the MAAS error that kept it
        from answering; service-mode identities are known already."""
        if self._probe is None or self.confirmed(identity.caller):
            return
        try:
            await self._probe(identity.caller)
        except Forbidden:
            pass  # MAAS knows the key; what it may do is for each call to find out
        except Unauthenticated:
            raise unauthenticated() from None
        self._confirmed[identity.caller.principal] = True

    # Rate limits ------------------------------------------------------------------------------

    def share(self, counter: SharedCounter | None) -> None:
        """Count rate limits and cost budgets in buckets every replica shares (Redis), or each
        replica alone again (None)."""
        for limit in (self.limiter, self.budget):
            if limit is not None:
                limit.shared = counter

    async def throttle(self, identity: Identity, client: str | None = None) -> None:
        """Count one request against the principal's rate; raises RateLimited when over it."""
        if self.limiter is None:
            return
        wait = await self.limiter.take(self._bucket(identity, client))
        if wait > 0:
            seconds = _seconds(wait)
            raise RateLimited(
                f"rate limit exceeded: retry in {seconds} s", retry_after=float(seconds)
            )

    async def spend(self, identity: Identity, cost: int, client: str | None = None) -> None:
        """Count an operation's estimated cost against the principal's budget; raises
        RateLimited, with the estimate and the budget, when over it."""
        budget = self.budget
        if budget is None or cost <= 0:
            return
        details = {"cost": {"estimated": cost, "budget": int(budget.burst)}}
        if cost > budget.burst:
            raise RateLimited(
                f"this operation's estimated cost ({cost}) is more than the whole budget "
                f"({int(budget.burst)} per {round(budget.burst / budget.rate)} s)",
                details=details,
            )
        wait = await budget.take(self._bucket(identity, client), float(cost))
        if wait > 0:
            seconds = _seconds(wait)
            raise RateLimited(
                f"cost budget exceeded: retry in {seconds} s",
                details=details,
                retry_after=float(seconds),
            )

    def _bucket(self, identity: Identity, client: str | None) -> str:
        # Anonymous callers are told apart by address, so one of them cannot starve the rest.
        key = identity.caller.principal
        if identity is self._anonymous and client:
            key = f"{ANONYMOUS}@{client}"
        return key


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
