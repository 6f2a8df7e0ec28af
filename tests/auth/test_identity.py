"""Who is calling: the one Authorization header, tokens and anonymity in service mode, MAAS keys
in passthrough mode (confirmed by the real simulator), and the rate and cost limits per caller."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from app.auth.identity import ANONYMOUS, CallerResolver, Identity, authorization_of
from app.auth.tokens import token_digest, token_line
from app.cli.server import BackgroundServer
from app.core.errors import Forbidden, RateLimited, Unauthenticated
from app.core.permissions import Permission
from app.core.settings import Settings
from app.maas.auth import MaasCredentials
from app.maas.client import MaasClient
from app.service import Caller
from tests.conftest import ADMIN_KEY, USER_KEY

pytestmark = pytest.mark.anyio

READ, WRITE = Permission.READ, Permission.WRITE
Resolver = Callable[..., Awaitable[CallerResolver]]


@pytest.fixture
async def resolver(
    simulator: BackgroundServer, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[CallerResolver]]]:
    """Start resolvers with setting overrides against the simulator; stopped at the end."""
    started: list[tuple[CallerResolver, MaasClient]] = []

    async def start(probe: Any = None, **overrides: Any) -> CallerResolver:
        settings = Settings(
            **{"maas_url": f"{simulator.url}/MAAS", "maas_api_key": ADMIN_KEY, **overrides}
        )
        maas = await MaasClient.from_settings(settings).__aenter__()
        callers = CallerResolver(settings, probe)
        callers.start(maas)
        started.append((callers, maas))
        return callers

    yield start
    for callers, maas in started:
        callers.stop()
        await maas.__aexit__(None, None, None)


def tokens_file(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "tokens"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def test_the_authorization_header_is_found_once_or_refused_when_repeated() -> None:
    assert authorization_of([(b"accept", b"*/*")]) is None
    assert authorization_of([(b"accept", b"*/*"), (b"authorization", b"Bearer t")]) == b"Bearer t"
    with pytest.raises(Unauthenticated, match=r"^missing or invalid credentials$"):
        authorization_of([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")])


def test_an_identity_allows_its_scopes_and_refuses_the_others_by_name() -> None:
    identity = Identity(Caller("p", None), "reader", frozenset({READ}))  # type: ignore[arg-type]

    assert (identity.allows(READ), identity.allows(WRITE)) == (True, False)
    identity.require(READ)
    with pytest.raises(Forbidden, match=r"^this needs the write scope$") as refused:
        identity.require(WRITE)
    assert refused.value.details == {"scope": "write"}


async def test_nothing_is_authenticated_before_the_gateway_starts() -> None:
    settings = Settings(maas_url="http://127.0.0.1:9/MAAS", maas_api_key=ADMIN_KEY)
    with pytest.raises(RuntimeError, match=r"^the gateway has not started$"):
        CallerResolver(settings).authenticate("Bearer x")


async def test_a_token_stands_for_its_name_and_scopes_under_a_principal_of_its_hash(
    resolver: Resolver, tmp_path: Path
) -> None:
    callers = await resolver(tokens_file=tokens_file(tmp_path, token_line("mgw_1", "ci", [READ])))

    identity = callers.authenticate("Bearer mgw_1")

    assert (identity.name, identity.scopes, identity.verified) == ("ci", {READ}, True)
    assert identity.caller.principal == f"token:{token_digest('mgw_1')[:24]}"
    assert callers.authenticate("  bearer   mgw_1  ") is identity
    assert callers.confirmed(identity.caller)
    assert callers.default is not None
    assert identity.caller.maas is callers.default.maas  # the gateway's own key signs


async def test_without_a_tokens_file_every_token_is_refused(resolver: Resolver) -> None:
    callers = await resolver(anonymous_scopes="read")

    with pytest.raises(Unauthenticated, match=r"^missing or invalid credentials$"):
        callers.authenticate("Bearer mgw_1")


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer ", "Basic mgw_1", "mgw_1", "Bearer mgw_2", "Bearer x y"]
)
async def test_anything_but_a_known_bearer_token_is_refused_alike(
    resolver: Resolver, tmp_path: Path, header: str | None
) -> None:
    callers = await resolver(tokens_file=tokens_file(tmp_path, token_line("mgw_1", "ci", [READ])))

    with pytest.raises(Unauthenticated, match=r"^missing or invalid credentials$"):
        callers.authenticate(header)


async def test_no_credential_is_the_anonymous_caller_when_it_has_scopes(
    resolver: Resolver, tmp_path: Path
) -> None:
    callers = await resolver(
        tokens_file=tokens_file(tmp_path, token_line("mgw_1", "ci", [WRITE])),
        anonymous_scopes="read",
    )

    anonymous = callers.authenticate(None)

    assert (anonymous.name, anonymous.scopes, anonymous.verified) == (ANONYMOUS, {READ}, False)
    assert anonymous.caller is callers.default
    assert anonymous.caller.principal == ANONYMOUS
    with pytest.raises(Unauthenticated):
        callers.authenticate("Bearer wrong")  # a wrong token is not anonymity


async def test_a_changed_tokens_file_changes_what_a_seen_header_stands_for(
    resolver: Resolver, tmp_path: Path
) -> None:
    path = tokens_file(tmp_path, token_line("mgw_1", "ci", [READ]))
    callers = await resolver(tokens_file=path)
    header = b"Bearer mgw_1"
    before = callers._from_header(header)
    assert callers._from_header(header) is before
    assert callers.tokens is not None

    for lines in ([token_line("mgw_1", "ci", [READ, WRITE])], [token_line("mgw_1", "cd", [READ])]):
        tokens_file(tmp_path, *lines)
        callers.tokens.request_reload()
        after = callers._from_header(header)
        assert after is not before
        assert after.caller.principal == before.caller.principal
        before = after
    assert (before.name, before.scopes) == ("cd", {READ})
    tokens_file(tmp_path, token_line("mgw_2", "other", [READ]))
    callers.tokens.request_reload()
    with pytest.raises(Unauthenticated):
        callers._from_header(header)


async def test_identities_of_removed_tokens_are_not_kept_for_ever(
    resolver: Resolver, tmp_path: Path
) -> None:
    keeper = token_line("mgw_keeper", "keeper", [READ])
    callers = await resolver(tokens_file=tokens_file(tmp_path, keeper))
    assert callers.tokens is not None
    held = []
    for n in range(150):
        tokens_file(tmp_path, keeper, token_line(f"mgw_{n}", "t", [READ]))
        callers.tokens.request_reload()
        assert callers.authenticate(f"Bearer mgw_{n}").name == "t"
        held.append(len(callers._by_token))

    # Up to twice the tokens in the file, plus 64, are kept; past that they start over.
    assert max(held) == 2 * 2 + 64 + 1
    assert held[2 * 2 + 64 + 1] == 1


async def test_a_maas_key_stands_for_its_own_fingerprint_with_read_and_write(
    resolver: Resolver,
) -> None:
    callers = await resolver(auth_mode="passthrough", maas_api_key=None)

    identity = callers.authenticate(f"Bearer {USER_KEY}")

    fingerprint = MaasCredentials.from_key(USER_KEY).fingerprint
    assert identity.caller.principal == fingerprint
    assert (identity.name, identity.scopes) == (f"maas-key:{fingerprint[:12]}", {READ, WRITE})
    assert callers.authenticate(f"Bearer {USER_KEY}") is identity
    with pytest.raises(Unauthenticated, match=r"^missing or invalid credentials$"):
        callers.authenticate("Bearer not:a:key:at-all")
    assert not callers.confirmed(identity.caller)


async def test_seen_keys_and_headers_are_bounded_dropping_the_least_recent(
    resolver: Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.auth.identity.MAX_CACHED_KEYS", 8)
    callers = await resolver(auth_mode="passthrough", maas_api_key=None)
    keys = [f"Consumer{n:010d}:Token{n:013d}:{'s' * 32}" for n in range(10)]
    first = callers.authenticate(f"Bearer {keys[0]}")
    for key in keys[1:8]:
        callers._from_header(f"Bearer {key}".encode())
    assert callers.authenticate(f"Bearer {keys[0]}") is first  # used again: now the newest

    for key in keys[8:]:
        callers._from_header(f"Bearer {key}".encode())

    assert len(callers._by_key) == 8
    assert callers.authenticate(f"Bearer {keys[0]}") is first
    assert keys[1] not in callers._by_key
    assert len(callers._by_header) == 1  # cleared when full, then the newest


async def test_a_maas_key_is_confirmed_by_maas_once_and_remembered(resolver: Resolver) -> None:
    asked: list[str] = []

    async def probe(caller: Caller) -> object:
        asked.append(caller.principal)
        return await caller.maas.list_boot_sources()

    callers = await resolver(probe=probe, auth_mode="passthrough", maas_api_key=None)
    admin = callers.authenticate(f"Bearer {ADMIN_KEY}")
    user = callers.authenticate(f"Bearer {USER_KEY}")  # MAAS knows it, and refuses this read
    unknown = callers.authenticate(f"Bearer Unknown000000000001:Unknown00000000001:{'u' * 32}")

    for identity in (admin, admin, user):
        await callers.confirm(identity)
    with pytest.raises(Unauthenticated, match=r"^missing or invalid credentials$"):
        await callers.confirm(unknown)

    assert asked == [admin.caller.principal, user.caller.principal, unknown.caller.principal]
    assert (callers.confirmed(admin.caller), callers.confirmed(user.caller)) == (True, True)
    assert not callers.confirmed(unknown.caller)


@pytest.mark.parametrize(("rate", "waits"), [(0.5, [2, 2.0]), (4.0, [1, 1.0]), (0.4, [3, 3.0])])
async def test_over_the_rate_a_caller_is_told_the_whole_seconds_to_wait(
    resolver: Resolver, rate: float, waits: list[float]
) -> None:
    callers = await resolver(
        anonymous_scopes="read", rate_limit_per_second=rate, rate_limit_burst=1
    )
    anonymous = callers.authenticate(None)
    await callers.throttle(anonymous, "10.0.0.1")

    with pytest.raises(RateLimited) as limited:
        await callers.throttle(anonymous, "10.0.0.1")

    seconds = waits[0]
    assert limited.value.message == f"rate limit exceeded: retry in {seconds} s"
    assert limited.value.retry_after == waits[1] == max(1, math.ceil(1 / rate))
    await callers.throttle(anonymous, "10.0.0.2")  # another address: another bucket


async def test_the_bucket_of_a_token_is_its_own_whatever_its_address(
    resolver: Resolver, tmp_path: Path
) -> None:
    callers = await resolver(
        tokens_file=tokens_file(tmp_path, token_line("mgw_1", "ci", [READ])),
        rate_limit_per_second=1,
        rate_limit_burst=1,
    )
    identity = callers.authenticate("Bearer mgw_1")
    await callers.throttle(identity, "10.0.0.1")
    with pytest.raises(RateLimited):
        await callers.throttle(identity, "10.0.0.2")
    assert callers.tokens is not None
    tokens_file(tmp_path, token_line("mgw_1", "ci", [READ]), token_line("mgw_2", "cd", [READ]))
    callers.tokens.request_reload()
    await callers.throttle(callers.authenticate("Bearer mgw_2"), "10.0.0.1")  # its own bucket
    off = await resolver(anonymous_scopes="read", rate_limit_per_second=0)
    for _ in range(300):
        await off.throttle(off.authenticate(None))


async def test_costs_are_spent_from_a_budget_per_caller(resolver: Resolver, tmp_path: Path) -> None:
    callers = await resolver(anonymous_scopes="read", cost_budget=10, cost_budget_window=20)
    anonymous = callers.authenticate(None)
    await callers.spend(anonymous, 0, "a")
    await callers.spend(anonymous, -5, "a")
    await callers.spend(anonymous, 10, "a")

    with pytest.raises(RateLimited) as over:
        await callers.spend(anonymous, 11, "b")
    with pytest.raises(RateLimited) as spent:
        await callers.spend(anonymous, 3, "a")

    budget = {"cost": {"estimated": 11, "budget": 10}}
    assert over.value.message == (
        "this operation's estimated cost (11) is more than the whole budget (10 per 20 s)"
    )
    assert (over.value.details, over.value.retry_after) == (budget, None)
    assert spent.value.message == "cost budget exceeded: retry in 6 s"  # 3 at 0.5 a second
    assert spent.value.details == {"cost": {"estimated": 3, "budget": 10}}
    assert spent.value.retry_after == 6.0
    await callers.spend(anonymous, 10, "b")  # another address: another budget


async def test_a_cost_of_one_counts(resolver: Resolver) -> None:
    callers = await resolver(anonymous_scopes="read", cost_budget=2, cost_budget_window=100)
    anonymous = callers.authenticate(None)
    for _ in range(2):
        await callers.spend(anonymous, 1)

    with pytest.raises(RateLimited, match=r"^cost budget exceeded: retry in 50 s$"):
        await callers.spend(anonymous, 1)


async def test_a_wait_under_a_second_still_refuses_for_a_whole_second(resolver: Resolver) -> None:
    callers = await resolver(anonymous_scopes="read", cost_budget=20, cost_budget_window=1)
    anonymous = callers.authenticate(None)
    await callers.spend(anonymous, 20)

    with pytest.raises(RateLimited) as spent:
        await callers.spend(anonymous, 15)  # 0.75 s at 20 a second, less what refilled since

    assert spent.value.message == "cost budget exceeded: retry in 1 s"
    assert spent.value.retry_after == 1.0


async def test_costs_are_free_without_a_budget(resolver: Resolver) -> None:
    callers = await resolver(anonymous_scopes="read", cost_budget=0)
    anonymous = callers.authenticate(None)

    for _ in range(3):
        await callers.spend(anonymous, 1_000_000)

    assert callers.budget is None
