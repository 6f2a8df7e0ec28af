"""FastAPI dependencies of the REST face: the service, the caller and the settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request

from app.auth.identity import Identity
from app.core.permissions import Permission
from app.core.settings import Settings
from app.service import BootService, Caller


def get_service(request: Request) -> BootService:
    service: BootService = request.app.state.service
    return service


# Documents the credential in OpenAPI; admission (app/http/admission.py) has already checked it.
bearer = HTTPBearer(
    scheme_name="bearer",
    description="A gateway token (service mode) or the caller's own MAAS API key "
    "`consumer_key:token_key:token_secret` (passthrough mode).",
    auto_error=False,
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_caller(
    request: Request,
    _credential: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Caller:
    """The caller, if its scopes allow the request: reads need `read`, changes `write`."""
    identity: Identity = request.app.state.callers.identify(request)
    identity.require(Permission.READ if request.method in SAFE_METHODS else Permission.WRITE)
    return identity.caller


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServiceDep = Annotated[BootService, Depends(get_service)]
CallerDep = Annotated[Caller, Depends(get_caller)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

# Ids are checked here so that a bad one never reaches MAAS, which would answer 500
# (maas-api.md §5.3, §9.22).
ResourceId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Boot resource id.")]
SourceId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Boot source id.")]
SelectionId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Selection id.")]
