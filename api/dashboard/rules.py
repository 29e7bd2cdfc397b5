"""`/dashboard/rules`: the cadence rules every automated line links to (`api.rules`), and
with ``?policy=NAME@VERSION`` that policy version's settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.dashboard.pages import PREFIX, render
from api.dashboard.session import PageError, SignedIn
from api.rules import RULES
from engine.errors import InvalidInput

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/rules", name="dashboard_rules")
def rules_page(request: Request, viewer: SignedIn,
               policy: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    settings = None
    if policy:
        name, _, version = policy.rpartition("@")
        if not name or not version.isdigit():
            raise PageError(400, f"policy: {policy!r} is not written NAME@VERSION")
        try:
            found = request.app.state.candidacies.policies.get(name, int(version))
        except InvalidInput:
            raise PageError(404, f"No policy {policy}.") from None
        settings = found.model_dump(mode="json")
    return render(request, viewer, "rules.html", page="dashboard_rules", rules=RULES,
                  policy=policy, settings=settings)
