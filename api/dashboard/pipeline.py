"""`/dashboard/pipeline`: where the candidacies stand.  Count per stage, funnel and
passthrough per interview round, median and p90 time in stage; every figure from the
pipeline read model (`api.read_models`), narrowed by the page's filters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.dashboard.filters import PageFilters
from api.dashboard.pages import PREFIX, render, views
from api.dashboard.session import SignedIn
from api.read_models import funnel, rounds, stage_counts, time_in_stage
from engine.lifecycle import Stage

router = APIRouter(prefix=PREFIX, include_in_schema=False)
_ORDER = {stage.value: i for i, stage in enumerate(Stage)}


def duration(seconds: float) -> str:
    """``6 d 16 h``, ``3 h 20 min``, ``45 min``: a stay's length for a person."""
    minutes = round(seconds / 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


@dataclass(frozen=True, slots=True)
class Stay:
    stage: str
    ended: int
    median: float
    p90: float


def figures(view: Any, filters: dict[str, Any]) -> dict[str, Any]:
    """Everything the page shows, and the charts' data (the same figures)."""
    counts = stage_counts(view, **filters)
    by_stage = [(stage.value, counts.get(stage.value, 0)) for stage in Stage]
    funnels = [(r, funnel(view, r, **filters)) for r in range(1, rounds(view, **filters) + 1)]
    stays = [Stay(stage, n, med, p90) for stage, (n, med, p90) in sorted(
        time_in_stage(view, **filters).items(), key=lambda kv: _ORDER.get(kv[0], len(_ORDER)))]
    charts = {
        "chart-stages": {"labels": [s for s, _ in by_stage],
                         "datasets": [{"label": "candidacies",
                                       "data": [n for _, n in by_stage]}]},
        "chart-funnel": {"labels": [step for step, _, _ in funnels[0][1]] if funnels else [],
                         "datasets": [{"label": f"round {r}",
                                       "data": [n for _, n, _ in steps]}
                                      for r, steps in funnels]},
        "chart-stays": {"labels": [s.stage for s in stays], "horizontal": True,
                        "datasets": [{"label": "median (days)",
                                      "data": [round(s.median / 86400, 2) for s in stays]},
                                     {"label": "p90 (days)",
                                      "data": [round(s.p90 / 86400, 2) for s in stays]}]},
    }
    return {"by_stage": by_stage, "total": sum(counts.values()), "funnels": funnels,
            "stays": stays, "charts": charts}


@router.get("/pipeline", name="dashboard_pipeline")
def pipeline_page(request: Request, viewer: SignedIn, filters: PageFilters) -> Response:
    data = figures(views(request)["pipeline"], filters.figures())
    return render(request, viewer, "pipeline.html", page="dashboard_pipeline",
                  filters=filters, duration=duration, share=share, **data)
