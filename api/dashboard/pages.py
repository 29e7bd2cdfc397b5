"""Rendering a dashboard page: the templates (Jinja2, autoescaped), the navigation, the
read models' lag strip, and the response headers every page carries (`render`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
import structlog
from eventsourcing.persistence import OperationalError
from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.routing import NoMatchFound

from api import assets
from api.dashboard.session import PageError, Viewer, current_session, remember
from engine.follower import Follower, Lag, ReadModel, ReadModelRecorder

log = structlog.get_logger("closer.dashboard")

TEMPLATES = Path(__file__).parent / "templates"
PREFIX = "/dashboard"

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
environment.globals.update(htmx=assets.HTMX, htmx_sse=assets.HTMX_SSE,
                           chart_js=assets.CHART_JS, static=assets.STATIC_URL)

# Scripts and styles from Closer only (no inline script at all: htmx's attributes are data).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
           "X-Frame-Options": "DENY"}


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    route: str  # the route's name; a page not installed yet shows as plain text


NAV = (
    NavItem("Today", "dashboard_today"),
    NavItem("Pipeline", "dashboard_pipeline"),
    NavItem("At risk", "dashboard_at_risk"),
    NavItem("Candidacy search", "dashboard_candidacies"),
    NavItem("Messages", "dashboard_messages"),
    NavItem("Compliance", "dashboard_compliance"),
    NavItem("Policies", "dashboard_policies"),
)
"""The navigation of every page, in order: each entry names the route of its page."""


def _nav(request: Request, current: str) -> list[dict[str, Any]]:
    return [{"label": label, "url": url, "current": route == current}
            for label, route, url in _nav_urls(request)]


def _nav_urls(request: Request) -> list[tuple[str, str, str | None]]:
    """Each navigation entry's label, route name and URL (None: not installed), looked up
    once per app: `url_path_for` walks every route of the app, and seven walks were a
    third of Today's server time in a profile (see docs/performance.md, "Dashboard
    (issue 16)").  The routes are all installed before the app serves a request."""
    state = request.app.state
    urls: list[tuple[str, str, str | None]] | None = getattr(state, "dashboard_nav", None)
    if urls is None:
        urls = []
        for item in NAV:
            try:
                url: str | None = str(request.app.url_path_for(item.route))
            except NoMatchFound:
                url = None
            urls.append((item.label, item.route, url))
        state.dashboard_nav = urls
    return urls


def read_models(request: Request) -> dict[str, ReadModel] | None:
    """The dashboard's read models on this app's store, by name, made once per app (None:
    the store has none, as in memory)."""
    state = request.app.state
    models = getattr(state, "dashboard_read_models", None)
    if models is None:
        from api.read_models import read_models as build

        try:
            models = {m.name: m for m in build(state.candidacies)}
        except (TypeError, AttributeError):  # a store without read models (in memory)
            return None
        state.dashboard_read_models = models
    return models


def lags(request: Request) -> list[Lag] | None:
    """How far each read model stands behind the log (None: they cannot be read here)."""
    models = read_models(request)
    if models is None:
        return None
    try:
        return Follower(request.app.state.candidacies, list(models.values())).lags()
    except OperationalError:  # a busy store must not take the page down with the strip
        log.warning("read models' lag unavailable")
        return None


def views(request: Request) -> dict[str, ReadModelRecorder]:
    """Each read model's view by name, for a page's figures (`api.read_models`' queries);
    on a store without read models a page answers 404 naming why."""
    models = read_models(request)
    if models is None:
        raise PageError(404, "The read models need a SQLite or PostgreSQL store.")
    return {name: model.view for name, model in models.items()}


def render(request: Request, viewer: Viewer | None, template: str, *, status: int = 200,
           page: str = "", **context: Any) -> HTMLResponse:
    """``template`` (extending ``base.html``) for ``viewer``, with the navigation (``page``
    is the current page's route name), the lag strip, the CSRF token for forms and the
    filters a page passes; the session cookie set if new, and the security headers."""
    session = current_session(request)
    flash = request.cookies.get("closer_flash")
    flash = unquote(flash) if flash else None
    body = environment.get_template(template).render(
        request=request, viewer=viewer, nav=_nav(request, page) if viewer else [],
        lags=lags(request) if viewer else None, csrf=session.csrf,
        can_act=bool(viewer and viewer.can_act), flash=flash, **context)
    response = HTMLResponse(body, status_code=status, headers=HEADERS)
    if flash is not None:
        response.delete_cookie("closer_flash", path=PREFIX)
    remember(request, response)
    return response


def flash(response: Any, message: str) -> None:
    """Show ``message`` once, on the next page rendered (after a form's redirect)."""
    response.set_cookie("closer_flash", quote(message[:300]), path=PREFIX, httponly=True,
                        samesite="lax", max_age=60)
