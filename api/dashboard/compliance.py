"""`/dashboard/compliance`: per recruiter and ISO week, the share of thank-yous *delivered*
the same local day as the interview, the share of the policy's nudges delivered by their
due local day, and the manual overrides of the pest line or patience (with their reasons);
every figure from the compliance read model (`api.read_models`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.dashboard.filters import PageFilters
from api.dashboard.pages import PREFIX, render, views
from api.dashboard.session import SignedIn
from api.read_models import nudge_compliance, override_counts, overrides, thank_you_compliance
from api.rules import RULES, rule_url

router = APIRouter(prefix=PREFIX, include_in_schema=False)
_OVERRIDES = 200


@dataclass(frozen=True, slots=True)
class Week:
    """One recruiter's week."""

    recruiter: str
    week: str
    interviews: int
    same_day: int
    nudges: int
    on_time: int
    overrides: int

    @staticmethod
    def share(part: int, whole: int) -> str:
        return "–" if not whole else f"{part / whole:.0%}"


def weeks(view: Any, filters: dict[str, Any]) -> list[Week]:
    thanks = thank_you_compliance(view, **filters)
    nudges = nudge_compliance(view, **filters)
    manual = override_counts(view, **filters)
    keys = sorted(set(thanks) | set(nudges) | set(manual), key=lambda k: (k[1], k[0]))
    return [Week(who, week, *thanks.get((who, week), (0, 0)), *nudges.get((who, week), (0, 0)),
                 manual.get((who, week), 0)) for who, week in keys]


def chart(rows: list[Week]) -> dict[str, Any]:
    """Per week (all recruiters shown together): the two shares, in percent."""
    totals: dict[str, list[int]] = {}
    for row in rows:
        t = totals.setdefault(row.week, [0, 0, 0, 0])
        t[0] += row.interviews
        t[1] += row.same_day
        t[2] += row.nudges
        t[3] += row.on_time
    labels = sorted(totals)
    return {"type": "line", "labels": labels, "max": 100, "datasets": [
        {"label": "thank-yous delivered the same local day (%)",
         "data": [round(100 * totals[w][1] / totals[w][0]) if totals[w][0] else None
                  for w in labels]},
        {"label": "nudges delivered on time (%)",
         "data": [round(100 * totals[w][3] / totals[w][2]) if totals[w][2] else None
                  for w in labels]}]}


@router.get("/compliance", name="dashboard_compliance")
def compliance_page(request: Request, viewer: SignedIn, filters: PageFilters) -> Response:
    view = views(request)["compliance"]
    figures = filters.figures()
    rows = weeks(view, figures)
    listed = overrides(view, **figures)
    return render(request, viewer, "compliance.html", page="dashboard_compliance",
                  filters=filters, weeks=rows, chart_spec=chart(rows),
                  overrides=listed[-_OVERRIDES:], overrides_total=len(listed),
                  share=Week.share, rule_url=rule_url, rules=RULES)
