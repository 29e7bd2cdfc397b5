"""The HTTP API: one FastAPI app over the one `Candidacies` application of the process.

`create_app()` builds it (tests hand it their own application); `server_app()` is the
factory `closer serve` (`serve`, `run_server`) gives uvicorn, so every worker process builds
its own from the settings.  The engine is synchronous, and it always runs in FastAPI's
thread pool: the queries are plain `def` routes; the candidacy commands are `async def` routes
that await the request's `CommandRunner` (`api.dependencies`), which runs the command in a
worker thread.  The event stream and the dependencies that do no I/O are `async`.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
import uvicorn
import uvicorn.supervisors
from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import assets, dashboard, problems
from api.auth import TokenVerifier, create_token
from api.dashboard.pages import PREFIX as DASHBOARD
from api.dashboard.session import SessionSigner
from api.demo import COACH, DEMO_DAYS, demo_settings, seed_demo
from api.dependencies import CommandTurns, InFlight, known_query_only
from api.limits import BODY_METHODS, BodyLimits
from api.logs import configure_logging
from api.outbox_cli import build_dispatcher
from api.read_models import follower
from api.roles import Role
from api.routes import ROUTERS
from api.settings import Settings, get_settings
from api.supervisor import Supervisor, default_state_file
from api.wiring import build_candidacies
from engine.application import Candidacies
from engine.clock import FixedClock, SystemClock
from engine.scheduler import run_forever

log = structlog.get_logger("closer.api")

DESCRIPTION = """\
Closer's HTTP face: record interviews, issue the playbook's commands, read any
candidacy's complete history, and follow every event as it happens.

Every request but `/healthz`, `/openapi.json`, `/docs`, `/redoc` and `/static` needs
`Authorization: Bearer <token>` (`closer token create --workspace W --role R`).
Errors are `application/problem+json` (RFC 9457) with a stable `type`.
See `docs/api.md`.
"""


def _version() -> str:
    try:
        return version("closer")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


class RequestLog:
    """One structlog line per request: method, path, status, duration and workspace.
    Never headers, query strings or bodies (tokens and candidates' words stay out of logs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            log.info("request", method=scope["method"], path=scope["path"], status=status,
                     duration_ms=round((time.perf_counter() - started) * 1000, 2),
                     workspace=state.get("workspace"))


def create_app(settings: Settings | None = None, *,
               candidacies: Candidacies | None = None) -> FastAPI:
    """The API over ``candidacies`` (default: built from ``settings``, closed at shutdown)."""
    settings = settings or get_settings()
    owned = candidacies is None
    application = candidacies if candidacies is not None else build_candidacies(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            application.close()

    app = FastAPI(
        title="Closer", version=_version(), description=DESCRIPTION, lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
        dependencies=[Depends(known_query_only)],
        docs_url=None, redoc_url=None,  # served by `assets` from vendored files, not a CDN
    )
    app.state.settings = settings
    app.state.candidacies = application
    app.state.tokens = TokenVerifier(application, ttl=settings.token_cache_seconds)
    app.state.inflight = InFlight()
    # On SQLite 4 commands at once, not as many as anyio's 40 threads: 1.2x the commands
    # answered, half the p99 (docs/performance.md, "Concurrent commands"); PostgreSQL 40.
    app.state.command_turns = CommandTurns(settings.concurrent_command_count())
    app.state.session_signer = SessionSigner(_session_secret(settings), settings.session_hours)
    for router in ROUTERS:
        app.include_router(router)
    # The JSON API's routes take one value a query parameter (`known_query_only`; the
    # request's route is the router's own object).
    app.state.single_valued = frozenset(id(route) for router in ROUTERS
                                        for route in router.routes)
    dashboard.install(app)  # /dashboard, and / leading to it (not in the OpenAPI document)
    assets.install(app)  # /static, and /docs and /redoc on it
    problems.install(app)
    dashboard.answer_bad_queries_as_pages(app)  # a bad filter: a page naming it, not JSON
    app.add_middleware(BodyLimits, max_bytes=settings.max_body_bytes,
                       max_depth=settings.max_json_depth, form_prefix=f"{DASHBOARD}/")
    app.add_middleware(RequestLog)  # outermost: it logs the refusals too
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _session_secret(settings: Settings) -> str:
    """The key of the dashboard's session cookies: the settings', else one drawn for this
    app (`serve` draws one for all its worker processes)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    return secrets.token_urlsafe(32)


def server_app() -> FastAPI:
    """The factory uvicorn calls in each worker (`closer serve`)."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with errors documented as problem+json only, and the door's
    refusals (`api.limits`: 413, 415) on every operation that takes a body."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    for path in schema.get("paths", {}).values():
        for method, operation in path.items():
            if method.upper() in BODY_METHODS:
                for status in (413, 415):
                    operation.setdefault("responses", {}).setdefault(
                        str(status), problems.problem_openapi(status))
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and problems.PROBLEM_JSON in content:
                    content.pop("application/json", None)
    app.openapi_schema = schema
    return schema


def serve(settings: Settings, *, demo: bool = False, echo: Any = print) -> None:
    """`closer serve`: with ``demo``, an empty store first gets the demo candidacies, and an
    admin token of the demo workspace is printed; then `run_server`."""
    if demo:
        settings = demo_settings(settings)  # alerts reach a demo recruiter
    if settings.session_secret is None:
        # One key for every worker process (they read their settings afresh): sessions
        # last until this server stops.
        os.environ["CLOSER_SESSION_SECRET"] = secrets.token_urlsafe(32)
        get_settings.cache_clear()
        settings = settings.model_copy(update={
            "session_secret": SecretStr(os.environ["CLOSER_SESSION_SECRET"])})
    # Create the tables once here, not racing in every worker; fail early if unreachable.
    candidacies = build_candidacies(settings, clock=SystemClock())
    try:
        if demo:
            if not candidacies.recorder.select_all_rows(limit=1):
                seed_demo_store(settings)
                echo("Loaded the demo candidacies.")
            token = create_token(candidacies, workspace=COACH.workspace, role=Role.ADMIN)
            url = f"http://{settings.host}:{settings.port}"
            echo(f"Closer at {url}  (dashboard: {url}/dashboard/today, API docs: {url}/docs)")
            echo(f"Admin token for workspace {COACH.workspace!r} (shown once; paste it to "
                 f"sign in to the dashboard):\n  {token}")
            echo(f"Try: curl -H 'Authorization: Bearer {token}' {url}/candidacies")
    finally:
        candidacies.close()
    supervisor = start_background(settings) if settings.background else None
    try:
        run_server(settings)
    finally:
        if supervisor is not None:
            supervisor.close()
            if supervisor.state_file is not None:
                supervisor.state_file.unlink(missing_ok=True)


AUDIT_START_SECONDS = 5.0
"""How long `closer serve`'s checkpoint worker waits before opening the store."""


def start_background(settings: Settings) -> Supervisor:
    """The scheduler and the outbox dispatcher as supervised threads of the serving (parent)
    process, each on its own application object: one of each however many HTTP workers
    serve.  Their state goes to ``settings.background_state_file`` (default: a file named
    by this process), which the HTTP workers read for /healthz (the environment tells the
    worker processes, which read their settings afresh, where it is)."""
    state_file = settings.background_state_file or str(default_state_file())
    os.environ["CLOSER_BACKGROUND_STATE_FILE"] = state_file
    get_settings.cache_clear()  # this process's HTTP app too reads the path from there
    supervisor = Supervisor(state_file=state_file,
                            restart_seconds=settings.background_restart_seconds,
                            restart_max_seconds=settings.background_restart_max_seconds)

    def schedule(stop: threading.Event, beat: Callable[[], None]) -> None:
        candidacies = build_candidacies(settings, clock=SystemClock())
        try:
            run_forever(candidacies, settings.scheduler_every_seconds, stop, on_pass=beat)
        finally:
            candidacies.close()

    def dispatch(stop: threading.Event, beat: Callable[[], None]) -> None:
        candidacies = build_candidacies(settings, clock=SystemClock())
        dispatcher = build_dispatcher(candidacies, settings)
        try:
            dispatcher.run_forever(settings.dispatch_every_seconds, stop, on_pass=beat)
        finally:
            dispatcher.release()
            candidacies.close()

    def project(stop: threading.Event, beat: Callable[[], None]) -> None:
        candidacies = build_candidacies(settings, clock=SystemClock())
        try:
            follower(candidacies).run_forever(settings.projections_every_seconds, stop,
                                              on_pass=beat)
        finally:
            candidacies.close()

    def checkpoints(stop: threading.Event, beat: Callable[[], None]) -> None:
        from api.audit_service import run_checkpoints

        # Opened once the other workers have opened theirs: on SQLite, five application
        # objects creating their tables at once made one fail with "database is locked".
        if stop.wait(AUDIT_START_SECONDS):
            return
        candidacies = build_candidacies(settings, clock=SystemClock())
        try:
            run_checkpoints(candidacies, settings, stop, beat)
        finally:
            candidacies.close()

    supervisor.add("scheduler", schedule)
    supervisor.add("outbox", dispatch)
    supervisor.add("projections", project)
    supervisor.add("audit", checkpoints)
    supervisor.start()
    return supervisor


def run_server(settings: Settings, app: str = "api.app:server_app") -> None:
    """uvicorn on ``settings.host:port`` with ``settings.workers`` processes, each building
    the app from the factory ``app`` (an import string, so workers can import it)."""
    config = TcpConfig(app, factory=True, host=settings.host, port=settings.port,
                        workers=settings.workers, access_log=False,
                        timeout_graceful_shutdown=3, log_level=settings.log_level)
    if config.workers > 1:
        uvicorn.supervisors.Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's start-up failure code (it logged why)


class TcpConfig(uvicorn.Config):
    """uvicorn's config, with the listener bound as IPPROTO_TCP.  uvicorn binds it with
    ``proto=0`` for `--workers N`, so asyncio never sets TCP_NODELAY on accepted connections
    and every keep-alive request waits ~40 ms for a delayed ACK (Kludex/uvicorn#3149;
    measured here: 44 ms vs 1.5 ms a request)."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP,
                                 fileno=sock.detach())
            sock.set_inheritable(True)
        return sock


def seed_demo_store(settings: Settings) -> list[str]:
    """Seed the demo through a short-lived application whose fixed clock starts a month ago
    and walks to now, the scheduler ticking and the outbox delivering on it; the server
    keeps the system clock."""
    settings = demo_settings(settings)
    clock = FixedClock(datetime.now(UTC) - timedelta(days=DEMO_DAYS))
    seeding = build_candidacies(settings, clock=clock)
    dispatcher = build_dispatcher(seeding, settings)
    try:
        return seed_demo(seeding, clock, dispatch=dispatcher.run_once, until=datetime.now(UTC))
    finally:
        dispatcher.release()
        seeding.close()
