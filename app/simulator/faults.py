"""Fault injection: per-path latency, error statuses, hangs, dropped connections, bad JSON."""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field, fields
from http import HTTPStatus
from typing import Any

from app.simulator.config import MaasVersion
from app.simulator.responses import BARE_TEXT, Response, conflict, nginx_page, text

# What regiond (or nginx in front of it) writes for each status; `body` on a rule overrides.
_STATUS_MESSAGES: dict[int, str] = {
    400: "Bad Request",
    403: "User is not allowed access to this API.",
    500: (
        'connection to server at "localhost" (127.0.0.1), port 5432 failed: '
        "FATAL:  sorry, too many clients already"
    ),
    503: "Unable to connect to any rack controller: no connections available.",
}


@dataclass
class FaultRule:
    """One fault, matched by `path` (a regex searched in the request path; "" matches all)
    and `method` (None: any).

    A matching rule fires with probability `rate` (seeded RNG) and, when `times` is set,
    only for that many requests. Every firing rule adds `latency_ms` (+ up to `jitter_ms`);
    the first firing rule with an effect decides it: `hang` until the client gives up,
    `drop` the connection after reading the body, `drop_after_bytes` once that much of the
    body has arrived (a shorter body goes through), answer `status` (with `body`), answer
    200 with truncated JSON (`malformed`), or send the real answer's body `DRIP_BYTES` at a
    time, `drip_ms` apart (`drip_ms`: a slow drip after prompt headers).
    """

    path: str = ""
    method: str | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    status: int | None = None
    rate: float = 1.0
    hang: bool = False
    drop: bool = False
    drop_after_bytes: int | None = None
    malformed: bool = False
    drip_ms: float | None = None
    times: int | None = None
    body: str | None = None

    def __post_init__(self) -> None:
        if self.path is None:
            self.path = ""
        try:
            re.compile(self.path)
        except re.error as exc:
            raise ValueError(f"path is not a valid regular expression: {exc}") from exc
        if self.method is not None:
            self.method = self.method.upper()
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must not be negative")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if self.drop_after_bytes is not None and self.drop_after_bytes < 0:
            raise ValueError("drop_after_bytes must not be negative")
        if self.drip_ms is not None and self.drip_ms <= 0:
            raise ValueError("drip_ms must be positive")
        if self.times is not None and self.times < 0:
            raise ValueError("times must not be negative")

    @classmethod
    def from_dict(cls, data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError("a rule must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown rule fields: {', '.join(unknown)}")
        types: dict[str, tuple[type, ...]] = {
            "path": (str, type(None)),
            "method": (str, type(None)),
            "latency_ms": (int, float),
            "jitter_ms": (int, float),
            "status": (int, type(None)),
            "rate": (int, float),
            "hang": (bool,),
            "drop": (bool,),
            "drop_after_bytes": (int, type(None)),
            "malformed": (bool,),
            "drip_ms": (int, float, type(None)),
            "times": (int, type(None)),
            "body": (str, type(None)),
        }
        for name, value in data.items():
            numeric = name not in ("hang", "drop", "malformed")
            if not isinstance(value, types[name]) or (numeric and isinstance(value, bool)):
                raise ValueError(f"{name} has the wrong type")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def has_effect(self) -> bool:
        return (
            self.hang
            or self.drop
            or self.drop_after_bytes is not None
            or self.status is not None
            or self.malformed
            or self.drip_ms is not None
        )


@dataclass
class FaultPlan:
    """What the matching rules decided for one request."""

    delay_s: float = 0.0
    hang: bool = False
    drop: bool = False
    drop_after_bytes: int | None = None
    status: int | None = None
    body: str | None = None
    malformed: bool = False
    drip_s: float | None = None


# How much of a dripped body goes out at a time.
DRIP_BYTES = 16


@dataclass
class _ActiveRule:
    rule: FaultRule
    pattern: re.Pattern[str]
    remaining: int | None = field(default=None)


class FaultSet:
    """The active rules; not thread-safe on its own (the simulator holds its lock)."""

    def __init__(self, rules: tuple[FaultRule, ...] | list[FaultRule] = ()) -> None:
        self._rules: list[_ActiveRule] = []
        self.replace(rules)

    def replace(self, rules: tuple[FaultRule, ...] | list[FaultRule]) -> None:
        self._rules = [
            _ActiveRule(FaultRule(**rule.to_dict()), re.compile(rule.path), rule.times)
            for rule in rules
            if rule.times != 0
        ]

    def clear(self) -> None:
        self._rules = []

    def describe(self) -> list[dict[str, Any]]:
        listed = []
        for active in self._rules:
            entry = active.rule.to_dict()
            entry["times"] = active.remaining
            listed.append(entry)
        return listed

    def plan(self, method: str, path: str, rng: random.Random) -> FaultPlan:
        """Fire the rules matching this request: latencies add up, the first effect wins."""
        plan = FaultPlan()
        decided = False
        for active in list(self._rules):
            rule = active.rule
            if rule.method is not None and rule.method != method:
                continue
            if not active.pattern.search(path):
                continue
            if rule.rate < 1.0 and rng.random() >= rule.rate:
                continue
            if active.remaining is not None:
                active.remaining -= 1
                if active.remaining <= 0:
                    self._rules.remove(active)
            plan.delay_s += rule.latency_ms / 1000.0
            if rule.jitter_ms:
                plan.delay_s += rng.uniform(0.0, rule.jitter_ms) / 1000.0
            if rule.has_effect and not decided:
                decided = True
                plan.hang = rule.hang
                plan.drop = rule.drop
                plan.drop_after_bytes = rule.drop_after_bytes
                plan.status = rule.status
                plan.body = rule.body
                plan.malformed = rule.malformed
                plan.drip_s = None if rule.drip_ms is None else rule.drip_ms / 1000.0
        return plan


def fault_response(status: int, body: str | None, version: MaasVersion) -> Response:
    """An error answer shaped like the component of a MAAS deployment that would produce it."""
    if status == 409 and body is None:
        return conflict()
    if status in (502, 504) and body is None:
        # regiond down or too slow: nginx answers with its own page.
        return nginx_page(status, HTTPStatus(status).phrase)
    if status == 404 and body is None:
        text_body = (
            "No BootResource matches the given query."
            if version.detailed_not_found
            else "Not Found"
        )
        return text(text_body, 404, BARE_TEXT)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    response = text(body if body is not None else _STATUS_MESSAGES.get(status, phrase), status)
    if status == 503:
        # MAAS's RETRY_AFTER_SERVICE_UNAVAILABLE (middleware.py).
        response.headers.append(("Retry-After", "10"))
    return response
