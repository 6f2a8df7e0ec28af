"""Gateway tokens: how they are made, hashed, listed in a tokens file and looked up."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from app.core.permissions import Permission, format_permissions, parse_permissions

log = logging.getLogger(__name__)


TOKEN_PREFIX = "mgw_"  # nosec B105  # a public marker for secret scanners


HASH_SCHEME = "sha256"


TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def new_token() -> str:
    """A fresh gateway token: 256 random bits, prefixed so secret scanners can spot it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    # Tokens are 256-bit random strings, not passwords: one fast hash resists any guessing,
    # and keeps verification cheap enough for the response cache's hit path.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def token_line(token: str, name: str, scopes: Iterable[Permission]) -> str:
    """The tokens-file line that admits `token` (which itself never goes in the file)."""
    if not TOKEN_NAME.match(name):
        raise ValueError("a token name is 1-64 letters, digits, '.', '_', '@' or '-'")
    granted = format_permissions(scopes)
    if not granted:
        raise ValueError("a token needs at least one scope")
    return f"{HASH_SCHEME}:{token_digest(token)} {name} {granted}"


@dataclass(frozen=True, slots=True)
class TokenEntry:
    name: str
    scopes: frozenset[Permission]
    digest: str


class TokenFileError(ValueError):
    """A tokens file that cannot be used; the message names lines, never their content."""


def parse_tokens(text: str) -> dict[str, TokenEntry]:
    """Entries of a tokens file by digest.

    One token a line: `sha256:<64 hex> <name> <scopes>`; blank lines and `#` comments are
    skipped. Names and digests must be unique.
    """
    entries: dict[str, TokenEntry] = {}
    names: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise TokenFileError(f"line {number}: expected '{HASH_SCHEME}:<hex> <name> <scopes>'")
        hashed, name, scope_text = parts
        scheme, _, digest = hashed.partition(":")
        digest = digest.lower()
        if scheme != HASH_SCHEME or not _DIGEST.match(digest):
            raise TokenFileError(f"line {number}: the hash must be {HASH_SCHEME}:<64 hex digits>")
        if not TOKEN_NAME.match(name):
            raise TokenFileError(f"line {number}: invalid token name")
        try:
            scopes = parse_permissions(scope_text)
        except ValueError as error:
            raise TokenFileError(f"line {number}: {error}") from None
        if not scopes:
            raise TokenFileError(f"line {number}: no scopes")
        if name in names or digest in entries:
            raise TokenFileError(f"line {number}: duplicate token name or hash")
        names.add(name)
        entries[digest] = TokenEntry(name=name, scopes=scopes, digest=digest)
    return entries


class TokenStore:
    """The gateway tokens of a file, re-read when the file changes (checked at most every
    `check_interval` seconds, on the request path: a stat call, no background task) or when
    `request_reload` is called (SIGHUP)."""

    def __init__(
        self,
        path: str | Path,
        *,
        check_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._interval = check_interval
        self._clock = clock
        self._entries: dict[str, TokenEntry] = {}
        self._signature: tuple[int, int, int] | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def load(self) -> None:
        """Read the file now; raises TokenFileError or OSError (start-up fails on a bad file)."""
        stat = os.stat(self.path)
        self._entries = parse_tokens(self.path.read_text(encoding="utf-8"))
        self._signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        self.generation += 1
        self._next_check = self._clock() + self._interval
        log.info("loaded %d gateway token(s) from %s", len(self._entries), self.path)

    def request_reload(self) -> None:
        """Re-read the file at the next lookup even if it looks unchanged."""
        self._signature = None
        self._next_check = 0.0

    def current(self) -> int:
        """The generation of the tokens in use, after re-reading the file if it is due: it
        changes whenever they do, so answers derived from them can be kept until then."""
        if self._clock() >= self._next_check:
            self._refresh()
        return self.generation

    def lookup(self, token: str) -> TokenEntry | None:
        self.current()
        digest = token_digest(token)
        entry = self._entries.get(digest)
        # The dict lookup compares digests of a secret, not the secret; compare_digest keeps
        # the final comparison constant-time all the same.
        if entry is None or not hmac.compare_digest(entry.digest, digest):
            return None
        return entry

    def _refresh(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is re-reading; keep serving the current entries
        try:
            self._next_check = self._clock() + self._interval
            try:
                stat = os.stat(self.path)
            except OSError as error:
                # Kubernetes swaps a mounted Secret atomically, so a missing file is a mistake:
                # keep the tokens already known rather than lock every caller out.
                log.error("cannot read the tokens file %s: %s", self.path, error.strerror)
                return
            signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if signature == self._signature:
                return
            try:
                entries = parse_tokens(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, TokenFileError) as error:
                reason = error.strerror if isinstance(error, OSError) else str(error)
                if isinstance(error, UnicodeDecodeError):
                    reason = "not UTF-8 text"
                log.error("kept the previous gateway tokens: %s: %s", self.path, reason)
                self._signature = signature
                return
            self._entries = entries
            self._signature = signature
            self.generation += 1
            log.info("reloaded %d gateway token(s) from %s", len(entries), self.path)
        finally:
            self._lock.release()
