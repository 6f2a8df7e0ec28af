"""Gateway tokens: their lines in a tokens file, what a file may and may not say, and a store
that re-reads its file when it changes (checked at most every interval) or when asked."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from app.auth.tokens import (
    TokenEntry,
    TokenFileError,
    TokenStore,
    new_token,
    parse_tokens,
    token_digest,
    token_line,
)
from app.core.permissions import ALL_PERMISSIONS, Permission

READ, WRITE = Permission.READ, Permission.WRITE
HEX = "0123456789abcdef" * 4


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_new_token_is_prefixed_and_random() -> None:
    tokens = {new_token() for _ in range(50)}

    assert len(tokens) == 50
    assert all(t.startswith("mgw_") and len(t) == 4 + 43 for t in tokens)


def test_a_digest_is_the_sha256_of_the_tokens_bytes() -> None:
    assert token_digest("mgw_abc") == hashlib.sha256(b"mgw_abc").hexdigest()
    # A header value decoded with surrogate escapes hashes as the bytes it stands for.
    assert token_digest("mgw_\udcff") == hashlib.sha256(b"mgw_\xff").hexdigest()


def test_a_token_line_names_the_hash_the_name_and_the_scopes_in_order() -> None:
    line = token_line("mgw_secret", "ci.bot@team-1", [WRITE, READ])

    assert line == f"sha256:{token_digest('mgw_secret')} ci.bot@team-1 read,write"
    assert parse_tokens(line) == {
        token_digest("mgw_secret"): TokenEntry(
            "ci.bot@team-1", frozenset({READ, WRITE}), token_digest("mgw_secret")
        )
    }


@pytest.mark.parametrize("name", ["", "-lead", "a b", "x" * 65, "tab\tname", "ünï"])
def test_a_token_line_refuses_a_bad_name(name: str) -> None:
    with pytest.raises(ValueError, match=r"^a token name is 1-64 letters, digits, '\.', '_', '@'"):
        token_line("mgw_secret", name, [READ])


def test_a_token_line_takes_a_name_of_64_and_refuses_no_scopes() -> None:
    assert token_line("t", "n" * 64, [READ]).endswith(f" {'n' * 64} read")
    with pytest.raises(ValueError, match=r"^a token needs at least one scope$"):
        token_line("t", "name", [])


def test_blank_lines_and_comments_are_skipped_and_digests_lowercased() -> None:
    text = f"\n# the CI's token\n   \nsha256:{HEX.upper()} ci admin\n"

    assert parse_tokens(text) == {HEX: TokenEntry("ci", ALL_PERMISSIONS, HEX)}


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (f"sha256:{HEX} ci", "expected 'sha256:<hex> <name> <scopes>'"),
        (f"sha256:{HEX} ci read extra", "expected 'sha256:<hex> <name> <scopes>'"),
        (f"md5:{HEX} ci read", "the hash must be sha256:<64 hex digits>"),
        (f"sha256:{HEX[:-1]} ci read", "the hash must be sha256:<64 hex digits>"),
        (f"sha256:{HEX[:-1]}g ci read", "the hash must be sha256:<64 hex digits>"),
        (f"sha256{HEX} ci read", "the hash must be sha256:<64 hex digits>"),
        (f"sha256:{HEX} -ci read", "invalid token name"),
        (f"sha256:{HEX} ci root", "unknown scope root: use read, write and admin"),
        (f"sha256:{HEX} ci ,", "no scopes"),
    ],
)
def test_a_bad_line_is_refused_by_its_number(line: str, why: str) -> None:
    with pytest.raises(TokenFileError) as refused:
        parse_tokens(f"# tokens\n\n{line}\n")

    assert str(refused.value) == f"line 3: {why}"


@pytest.mark.parametrize(
    "second", [f"sha256:{HEX} ci write", f"sha256:{'f' * 64} ci write", f"sha256:{HEX} cd write"]
)
def test_a_name_or_hash_given_twice_is_refused(second: str) -> None:
    first = f"sha256:{HEX} ci read"
    if second.endswith("cd write"):
        second = second.replace(HEX, HEX.upper())  # the same digest, however it is spelt

    with pytest.raises(TokenFileError, match=r"^line 2: duplicate token name or hash$"):
        parse_tokens(f"{first}\n{second}")


def write(path: Path, *lines: str) -> None:
    """Swap the file in whole, as Kubernetes swaps a mounted Secret."""
    staged = path.with_suffix(".new")
    staged.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    os.replace(staged, path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TokenStore:
    path = tmp_path / "tokens"
    write(path, token_line("mgw_one", "one", [READ]))
    store = TokenStore(path, check_interval=5, clock=clock)
    store.load()
    return store


def test_lookup_finds_the_token_of_a_line_and_nothing_else(store: TokenStore) -> None:
    entry = store.lookup("mgw_one")

    assert entry == TokenEntry("one", frozenset({READ}), token_digest("mgw_one"))
    assert store.lookup("mgw_two") is None
    assert store.lookup("") is None
    assert (len(store), store.generation) == (1, 1)


def test_a_changed_file_is_read_once_the_interval_has_passed(
    store: TokenStore, clock: Clock
) -> None:
    write(store.path, token_line("mgw_two", "two", [WRITE]), token_line("mgw_3", "3", [READ]))
    clock.now += 4.9
    assert (store.lookup("mgw_two"), store.current()) == (None, 1)

    clock.now += 0.1

    assert store.lookup("mgw_two") is not None
    assert store.lookup("mgw_one") is None
    assert (len(store), store.current()) == (2, 2)


def test_an_unchanged_file_keeps_the_generation(store: TokenStore, clock: Clock) -> None:
    for _ in range(3):
        clock.now += 5
        assert store.current() == 1


def test_a_reload_request_reads_the_file_at_once(store: TokenStore) -> None:
    write(store.path, token_line("mgw_two", "two", [WRITE]))
    store.request_reload()

    assert store.lookup("mgw_two") is not None
    assert store.current() == 2
    store.request_reload()  # even when nothing changed
    assert store.current() == 3


def test_the_default_interval_is_two_seconds(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "tokens"
    write(path, token_line("mgw_one", "one", [READ]))
    store = TokenStore(path, clock=clock)
    store.load()
    write(path, token_line("mgw_two", "two", [READ]))
    clock.now += 1.9
    assert store.lookup("mgw_two") is None
    clock.now += 0.1
    assert store.lookup("mgw_two") is not None


def test_loading_says_how_many_tokens_came_from_where(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    write(path, token_line("a", "a", [READ]), token_line("b", "b", [READ]))
    store = TokenStore(path, check_interval=5, clock=clock)
    with caplog.at_level(logging.INFO, logger="app.auth.tokens"):
        store.load()
        write(path, token_line("c", "c", [READ]))
        clock.now += 5
        store.current()

    assert [r.getMessage() for r in caplog.records] == [
        f"loaded 2 gateway token(s) from {path}",
        f"reloaded 1 gateway token(s) from {path}",
    ]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"sha256:nothex one read\n", "line 1: the hash must be sha256:<64 hex digits>"),
        (b"\xff\xfe not text\n", "not UTF-8 text"),
    ],
)
def test_a_broken_file_keeps_the_tokens_and_is_not_read_again_until_it_changes(
    store: TokenStore, clock: Clock, caplog: pytest.LogCaptureFixture, content: bytes, reason: str
) -> None:
    store.path.with_suffix(".new").write_bytes(content)
    os.replace(store.path.with_suffix(".new"), store.path)
    with caplog.at_level(logging.ERROR, logger="app.auth.tokens"):
        for _ in range(2):
            clock.now += 5
            assert store.lookup("mgw_one") is not None

    assert [r.getMessage() for r in caplog.records] == [
        f"kept the previous gateway tokens: {store.path}: {reason}"
    ]
    assert store.generation == 1


def test_a_missing_file_keeps_the_tokens_and_says_why(
    store: TokenStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store.path.unlink()
    clock.now += 5
    with caplog.at_level(logging.ERROR, logger="app.auth.tokens"):
        assert store.lookup("mgw_one") is not None

    assert [r.getMessage() for r in caplog.records] == [
        f"cannot read the tokens file {store.path}: No such file or directory"
    ]
    clock.now += 4.9  # and it looks again only after another interval
    write(store.path, token_line("mgw_two", "two", [READ]))
    assert store.lookup("mgw_two") is None


def test_a_lookup_while_another_thread_re_reads_serves_the_current_tokens(
    store: TokenStore, clock: Clock
) -> None:
    write(store.path, token_line("mgw_two", "two", [READ]))
    clock.now += 5
    with store._lock:  # another thread is re-reading
        assert store.lookup("mgw_one") is not None
        assert store.lookup("mgw_two") is None

    assert store.lookup("mgw_two") is not None


def test_loading_a_file_that_cannot_be_used_fails(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("garbage\n", encoding="utf-8")
    with pytest.raises(TokenFileError, match=r"^line 1: "):
        TokenStore(path).load()
    with pytest.raises(FileNotFoundError):
        TokenStore(tmp_path / "absent").load()


def test_a_store_never_loaded_reads_its_file_at_the_first_lookup(tmp_path: Path) -> None:
    clock = Clock()
    clock.now = 0.0  # a monotonic clock may start at zero
    path = tmp_path / "tokens"
    absent = TokenStore(tmp_path / "absent", check_interval=5, clock=clock)
    write(path, token_line("mgw_one", "one", [READ]))
    store = TokenStore(path, check_interval=5, clock=clock)

    assert absent.lookup("mgw_one") is None  # no file: nothing admitted, nothing raised
    assert store.lookup("mgw_one") == TokenEntry("one", frozenset({READ}), token_digest("mgw_one"))


def test_a_reload_request_at_the_clocks_start_reads_at_once(tmp_path: Path) -> None:
    clock = Clock()
    clock.now = 0.0
    path = tmp_path / "tokens"
    write(path, token_line("mgw_one", "one", [READ]))
    store = TokenStore(path, check_interval=5, clock=clock)
    store.load()
    write(path, token_line("mgw_two", "two", [READ]))
    clock.now = 0.5

    store.request_reload()

    assert store.lookup("mgw_two") == TokenEntry("two", frozenset({READ}), token_digest("mgw_two"))
    assert store.generation == 2


def test_every_load_and_change_moves_the_generation_once(store: TokenStore, clock: Clock) -> None:
    store.load()
    assert store.generation == 2
    write(store.path, token_line("mgw_two", "two", [READ]))
    for _ in range(3):
        clock.now += 5
        store.current()

    assert store.generation == 3


def test_a_file_that_cannot_be_read_keeps_the_tokens_and_says_why(
    store: TokenStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store.path.unlink()
    store.path.mkdir()  # stat works, reading does not
    clock.now += 5
    with caplog.at_level(logging.ERROR, logger="app.auth.tokens"):
        assert store.lookup("mgw_one") is not None

    assert [r.getMessage() for r in caplog.records] == [
        f"kept the previous gateway tokens: {store.path}: Is a directory"
    ]
