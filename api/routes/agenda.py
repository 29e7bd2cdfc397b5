"""`/agenda`: what is due and overdue on a day across the workspace."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator, Field

from api.dependencies import Reader, Store
from api.due import DueAction, due_actions
from api.problems import problem_responses
from api.routes.candidacies import Unreadable, unreadable
from engine.errors import CandidacyNotFound, CorruptHistory
from engine.lifecycle import Stage
from engine.values import Day

router = APIRouter(prefix="/agenda", tags=["agenda"])

# A local day ends at most 14 hours after the same UTC day does (UTC+14).
_LATEST_OFFSET = timedelta(hours=14)
_PAGE = 200
# Stages at which a thank-you may still be owed after its overdue alert went.
_THANK_YOU_OWED = frozenset({Stage.INTERVIEWED, Stage.HESITATIONS_ADDRESSED,
                             Stage.NEXT_STEP_CLOSED, Stage.THANKED})


def _iso_date(value: object) -> object:
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
IsoDate = Annotated[Day, BeforeValidator(_iso_date)]
"""A `Day` (so in Closer's range of dates), written exactly YYYY-MM-DD."""


class AgendaItem(DueAction):
    """One due step of one candidacy."""

    candidacy_id: str
    candidate: str
    company: str
    role: str
    stage: Stage
    overdue: bool = Field(description="due before the day began (in the candidacy's zone)")


class Agenda(BaseModel):
    on: date
    items: list[AgendaItem] = Field(description="soonest first")
    unreadable: list[Unreadable] = Field(
        default_factory=list, description="candidacies with something due whose history "
                                          "cannot be read: their steps are not in `items`")


@router.get("", operation_id="getAgenda", responses=problem_responses(401, 422))
def get_agenda(
    candidacies: Store, principal: Reader,
    on: Annotated[IsoDate | None, Query(description="the day, YYYY-MM-DD, 1970-01-01 "
                                                    "to 2200-12-31 (default: today, UTC)")] = None,
) -> Agenda:
    """Thank-yous, nudges, stalls and next-step reminders due or overdue on `on`, each in the
    candidacy's own time zone."""
    day = on or candidacies.clock.now().date()
    latest_end = datetime.combine(day + timedelta(days=1), time(0), UTC) + _LATEST_OFFSET
    items: list[AgendaItem] = []
    corrupt: list[Unreadable] = []
    cursor: str | None = None
    while True:
        rows = candidacies.rows(principal.workspace, after=cursor, limit=_PAGE)
        for row in rows:
            if row.stage not in _THANK_YOU_OWED and (
                    row.due_at is None or row.due_at >= latest_end):
                # Nothing pending, or not before the day ends anywhere on Earth (a
                # thank-you still owed after its alert is not on the row: it is read).
                continue
            try:
                candidacy = candidacies.get(row.id, principal.workspace)
                due = due_actions(candidacies, candidacy)  # (reads its policy too)
            except CandidacyNotFound:  # pragma: no cover - a row always has its candidacy
                continue
            except CorruptHistory as error:
                corrupt.append(unreadable(error, row))
                continue
            zone = ZoneInfo(candidacy.timezone)
            start = datetime.combine(day, time(0), zone)
            end = datetime.combine(day + timedelta(days=1), time(0), zone)
            for action in due:
                if action.due_at < end:
                    items.append(AgendaItem(
                        **action.model_dump(), candidacy_id=row.id, candidate=row.candidate,
                        company=row.company, role=row.role, stage=Stage(row.stage),
                        overdue=action.due_at < start))
        if len(rows) < _PAGE:
            break
        cursor = rows[-1].id
    items.sort(key=lambda item: (item.due_at, item.candidacy_id))
    return Agenda(on=day, items=items, unreadable=corrupt)
