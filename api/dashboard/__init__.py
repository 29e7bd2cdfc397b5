"""The recruiter's dashboard: server-rendered pages over the read models and the one
application, at `/dashboard` (FastAPI + Jinja2, autoescaped; htmx for live parts; every
asset served by Closer itself).

How a page plugs in:

1. one router file here, ``api/dashboard/<page>.py``::

       router = APIRouter(prefix=PREFIX, include_in_schema=False)

       @router.get("/pipeline", name="dashboard_pipeline")
       def pipeline(request: Request, viewer: SignedIn, filters: PageFilters) -> Response:
           return render(request, viewer, "pipeline.html", page="dashboard_pipeline",
                         filters=filters, ...)

   (`SignedIn`: the signed-in viewer, else a redirect to sign in; `PageFilters`: the
   recruiter/workspace/company/date filters, another workspace answering 404; a form
   posts to a route taking `Acting`, which checks the CSRF token, the origin and the
   role, and answers a redirect, see `candidacy.py`; `pages.read_models(request)` gives
   the read models by name, made once per app);
2. one template ``templates/<page>.html`` that ``{% extends "base.html" %}`` and fills
   ``{% block content %}`` (``filters.html`` is the shared filter bar);
3. its router added to `ROUTERS` below.  The navigation (`pages.NAV`) already names every
   page's route; a route not installed shows as plain text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from api.dashboard import (
    at_risk,
    candidacy,
    compliance,
    live,
    messages,
    pipeline,
    policies,
    rules,
    signin,
    today,
)
from api.dashboard.pages import PREFIX, render
from api.dashboard.session import PageError, SignInRequired
from api.dependencies import list_query_names, refuse_repeated
from api.problems import ProblemError

ROUTERS = [signin.router, live.router, today.router, candidacy.router, messages.router,
           pipeline.router, at_risk.router, compliance.router, rules.router, policies.router]


async def single_valued_page_query(request: Request) -> None:
    """A page's filter given twice (``?since=...&since=...``) is refused with a page naming
    it (422, as `answer_bad_queries_as_pages` answers), not narrowed by the last one
    silently: the JSON API's `refuse_repeated`, but a parameter the page takes as a
    list (the policies page's ``show=``) may repeat."""
    route = request.scope.get("route")
    # (Two parameters at least, or nothing can repeat: most requests stop here.)
    if b"&" in request.scope.get("query_string", b"") and isinstance(route, APIRoute):
        refuse_repeated(request, list_query_names(route))


def install(app: FastAPI) -> None:
    """The dashboard's routes on ``app`` (none in the OpenAPI document), `/` leading to it,
    and its refusals answered as pages."""
    for router in ROUTERS:
        app.include_router(router, dependencies=[Depends(single_valued_page_query)])

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse(f"{PREFIX}/today", status_code=303)

    @app.get(PREFIX, include_in_schema=False)
    @app.get(f"{PREFIX}/", include_in_schema=False)
    async def dashboard() -> Response:
        return RedirectResponse(f"{PREFIX}/today", status_code=303)

    async def sign_in_first(request: Request, _: Exception) -> Response:
        if request.method != "GET":
            return render(request, None, "error.html", status=401,
                          message="Your session has ended: sign in again.")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/sign-in?next={quote(target)}", status_code=303)

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, PageError)
        return render(request, None, "error.html", status=error.status,
                      message=error.message)

    app.add_exception_handler(SignInRequired, sign_in_first)
    app.add_exception_handler(PageError, refused)


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _on_dashboard(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(f"{PREFIX}/")


def answer_bad_queries_as_pages(app: FastAPI) -> None:
    """On the dashboard's paths, a query parameter a page cannot take (unknown, or a value
    it refuses: ``within=abc``, a text too long) answers a page naming the parameter and
    why (422), where the API answers problem+json; call after `api.problems.install`."""
    api_validation = cast(Handler, app.exception_handlers[RequestValidationError])
    api_problem = cast(Handler, app.exception_handlers[ProblemError])

    def page(request: Request, problem: str) -> Response:
        shown = "Not shown" if request.method == "GET" else "Not done"
        return render(request, None, "error.html", status=422, message=f"{shown}: {problem}",
                      again=request.url.path if request.method == "GET" else None)

    async def validation(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        if not _on_dashboard(request):
            return await api_validation(request, error)
        first = error.errors()[0]
        loc = [str(part) for part in first.get("loc", ())]
        name = ".".join(loc[1:]) or (loc[0] if loc else "the request")
        reason = str(first.get("msg", "is invalid")).removeprefix("Value error, ")
        given = first.get("input")
        shown = f" (given {given!r})" if isinstance(given, str) and len(given) <= 60 else ""
        return page(request, f"{name}: {reason}{shown}.")

    async def problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, ProblemError)
        if not _on_dashboard(request) or error.kind != "invalid-input":
            return await api_problem(request, error)
        return page(request, f"{error.detail}: this page takes recruiter, company, since "
                             "and until (and its own).")

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(ProblemError, problem)
