"""FastAPI dependencies of the REST face: the service, the caller and the settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path
from starlette.requests import Request

from app.config import Settings
from app.service import BootService, Caller


def get_service(request: Request) -> BootService:
    service: BootService = request.app.state.service
    return service


def get_caller(request: Request) -> Caller:
    caller: Caller = request.app.state.callers.resolve(request)
    return caller


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
