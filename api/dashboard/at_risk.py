"""`/dashboard/at-risk`: candidacies stalled, and those the policy will stall soon, each
with the reason and the rule (linked to its entry on the Rules page).

Stalled ones come from the pipeline read model (the stall's reason and the rule recorded
with it); those about to stall are asked of the engine's decision function
(`api.read_models.about_to_stall`, `engine.decisions.plan`), so the moment shown is the one
the scheduler will stall them at.  A date range picks the stalls whose moment falls in it
(UTC days), the horizon reaching to its last day when that is further than ``within``."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.dashboard.filters import PageFilters
from api.dashboard.pages import PREFIX, render, views
from api.dashboard.session import SignedIn
from api.read_models import about_to_stall, stalled
from api.rules import RULES, rule_url

router = APIRouter(prefix=PREFIX, include_in_schema=False)
_LIMIT = 200


def when(moment: str | None) -> str:
    """An ISO moment as ``Tue 1 Dec 2026 10:00 UTC``."""
    if not moment:
        return ""
    at = datetime.fromisoformat(moment)
    return f"{at:%a} {at.day} {at:%b %Y %H:%M} UTC"


@router.get("/at-risk", name="dashboard_at_risk")
def at_risk_page(request: Request, viewer: SignedIn, filters: PageFilters,
                 within: Annotated[int, Query(ge=1, le=60)] = 7) -> Response:
    candidacies = request.app.state.candidacies
    view = views(request)["pipeline"]
    now = candidacies.clock.now()
    figures = filters.figures()
    horizon = timedelta(days=within)
    if filters.until is not None:
        horizon = max(horizon, datetime.combine(filters.until + timedelta(days=1), time(0),
                                                UTC) - now)
    soon = [s for s in about_to_stall(candidacies, view, now, horizon,
                                      workspace=filters.workspace, recruiter=filters.recruiter,
                                      company=filters.company, limit=_LIMIT)
            if filters.in_range(datetime.fromisoformat(s.at))]
    done = stalled(view, **figures, limit=_LIMIT)
    return render(request, viewer, "at_risk.html", page="dashboard_at_risk", filters=filters,
                  extra_filters={"within": within}, within=within, now=now.isoformat(),
                  soon=soon, stalled=done, limit=_LIMIT, when=when, rule_url=rule_url,
                  rules=RULES)
