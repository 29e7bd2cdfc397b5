"""`/dashboard/sign-in` and `/dashboard/sign-out`: an API token for a session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import hash_token
from api.dashboard.pages import PREFIX, render
from api.dashboard.session import (
    PostedForm,
    forget,
    remember,
    safe_next,
    signed_in_session,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/sign-in", name="dashboard_sign_in")
async def sign_in_page(request: Request,
                       next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    return render(request, None, "sign_in.html", next=safe_next(next), error=None)


@router.post("/sign-in")
async def sign_in(request: Request, form: PostedForm) -> Response:
    token = (form.get("token") or "").strip()
    principal = await run_in_threadpool(request.app.state.tokens.verify, token) \
        if token else None
    if principal is None:
        return render(request, None, "sign_in.html", status=401,
                      next=safe_next(form.get("next")),
                      error="That token is not valid (mistyped, revoked, or from another "
                            "Closer). Ask an admin for one: closer token create.")
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    remember(request, response, signed_in_session(request, hash_token(token)))
    return response


@router.post("/sign-out", name="dashboard_sign_out")
async def sign_out(request: Request, form: PostedForm) -> Response:
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    forget(response)
    return response
