"""REST route for desired images: plan, or apply, a declared set of boot sources and
selections (the document `maas-gateway images apply` reads, as JSON)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from app.rest.deps import CallerDep, ServiceDep
from app.rest.errors import COMMON_ERRORS, error_responses
from app.rest.responses import json_write
from app.service import ImagesResult, ImagesSpec

router = APIRouter(prefix="/images", tags=["images"])


class PlanStepOut(BaseModel):
    action: str = Field(examples=["create", "update", "delete"])
    url: str
    selection: str | None = Field(description="os/release; null for the source itself.")
    changes: dict[str, object]
    description: str = Field(examples=["+ create selection ubuntu/jammy of http://..."])


class ImagesResultOut(BaseModel):
    plan: list[PlanStepOut]
    applied: bool = Field(description="false for a dry run, or when nothing would change.")
    import_started: bool


@router.post(
    "/apply",
    response_model=ImagesResultOut,
    responses=error_responses(*COMMON_ERRORS),
    summary="Plan, or apply, a declared set of boot sources and selections",
    description="The plan lists what would be created, updated or (with prune) deleted. "
    "Unless dry_run, it is carried out and the import started; an empty plan changes nothing.",
)
async def apply(
    service: ServiceDep,
    caller: CallerDep,
    body: ImagesSpec,
    dry_run: Annotated[bool, Query()] = False,
    prune: Annotated[bool, Query(description="Delete what the document does not declare.")] = False,
) -> Response:
    result = await service.apply_images(caller, body.desired(), prune=prune, dry_run=dry_run)
    return json_write(dump_result(result))


def dump_result(result: ImagesResult) -> dict[str, object]:
    return {
        "plan": [
            {
                "action": s.action,
                "url": s.url,
                "selection": s.selection,
                "changes": s.changes,
                "description": s.describe(),
            }
            for s in result.plan
        ],
        "applied": result.applied,
        "import_started": result.import_started,
    }
