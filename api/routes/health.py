"""`/healthz`: whether this process serves and its store answers."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from api.dependencies import Store
from api.problems import problem_responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


@router.get("/healthz", operation_id="health", responses=problem_responses(422, 503))
def health(candidacies: Store) -> Health:
    """200 when the event store answers (503 problem otherwise); no token needed."""
    candidacies.recorder.max_notification_id()
    return Health(status="ok")
