"""Helpers for the health, metrics, logs and shutdown tests: scraping /metrics, capturing logs."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from app.cli.server import BackgroundServer
from app.main import create_app
from app.observability.logs import ACCESS_LOGGER, JsonFormatter
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample /metrics exposes, keyed by (sample name, labels)."""
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (sample, labels), _ in samples.items() if sample == name}


@contextmanager
def traced_gateway(simulator_url: str) -> Iterator[tuple[BackgroundServer, InMemorySpanExporter]]:
    """A gateway whose spans go to an in-memory exporter (readiness probes seldom), running."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = gateway_settings(simulator_url, ADMIN_KEY, readiness_probe_interval=60)
    with BackgroundServer(create_app(settings, tracer_provider=provider)) as gateway:
        yield gateway, exporter


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message or "condition not met in time"
        time.sleep(0.02)


class CapturedLog:
    """JSON lines written through the gateway's own formatter, parsed back."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self._stream.getvalue().splitlines() if line]

    def access(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["logger"] == ACCESS_LOGGER]

    @property
    def text(self) -> str:
        return self._stream.getvalue()


@contextmanager
def captured_log(level: int = logging.DEBUG) -> Iterator[CapturedLog]:
    """Every record of the app's loggers, as the JSON formatter renders it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    access = logging.getLogger(ACCESS_LOGGER)
    old_root, old_access = root.level, access.level
    root.addHandler(handler)
    root.setLevel(level)
    access.setLevel(level)
    try:
        yield CapturedLog(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_root)
        access.setLevel(old_access)
