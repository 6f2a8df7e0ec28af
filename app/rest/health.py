"""Operational endpoints: /livez, /readyz and /metrics; no credentials, not in the OpenAPI."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from app.observability.health import UpstreamHealth
from app.observability.metrics import CONTENT_TYPE, GatewayMetrics
from app.service import BootService

router = APIRouter(include_in_schema=False)

_NO_STORE = {"Cache-Control": "no-store"}


def _json(payload: object, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=_NO_STORE
    )


@router.get("/livez", name="livez")
async def livez() -> Response:
    """The process serves requests; never looks at MAAS, so an outage restarts nothing."""
    return _json({"status": "live"})


@router.get("/readyz", name="readyz")
async def readyz(request: Request) -> Response:
    """Ready while MAAS answered recently or the cache can still serve (app.health)."""
    health: UpstreamHealth = request.app.state.health
    service: BootService = request.app.state.service
    readiness = health.readiness(len(service.cache))
    body = {
        "status": "ready" if readiness.ready else "unready",
        "reason": readiness.reason,
        **readiness.detail,
    }
    if service.redis is not None:
        # Degraded (Redis unreachable) still serves, with TTLs capped: said here, not hidden.
        body["redis"] = service.redis.detail()
    return _json(body, 200 if readiness.ready else 503)


@router.get("/metrics", name="metrics")
async def metrics(request: Request) -> Response:
    """Every series in Prometheus's text format."""
    gateway_metrics: GatewayMetrics = request.app.state.metrics
    return Response(gateway_metrics.render(), media_type=CONTENT_TYPE, headers=_NO_STORE)
