"""`closer dispatch`: runs the outbox dispatcher (see `adapters.outbox`)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import typer

from adapters.outbox import Backoff, Dispatcher
from api.settings import Settings, get_settings
from api.wiring import build_candidacies


def build_dispatcher(app: Any, settings: Settings) -> Dispatcher:
    """A dispatcher with every channel configured from ``settings``."""
    tasks = Path(settings.tasks_dir)
    smtp = {"host": settings.smtp_host, "port": settings.smtp_port,
            "starttls": settings.smtp_starttls, "implicit_tls": settings.smtp_implicit_tls,
            "username": settings.smtp_user, "password": settings.smtp_password,
            "timeout": settings.smtp_timeout}
    channels: dict[str, dict[str, Any]] = {
        "email": {**smtp, "sender": settings.smtp_sender},
        "card": {"tasks_dir": str(tasks / "cards")},
        "voicemail": {"tasks_dir": str(tasks / "voicemail")},
        "calendar": {"directory": str(tasks / "invites")},
        "console": {},
    }
    if settings.webhook_url:
        channels["webhook"] = {"url": settings.webhook_url,
                               "secret": settings.webhook_secret or "",
                               "timeout": settings.smtp_timeout}
    workspaces = [w.strip() for w in settings.webhook_workspaces.split(",") if w.strip()]
    recruiter = ({"name": settings.recruiter_name, "email": settings.recruiter_email}
                 if settings.recruiter_name else None)
    approval = frozenset(w.strip() for w in settings.approval_workspaces.split(",") if w.strip())
    return Dispatcher(
        app, channel_settings=channels, recruiter=recruiter,
        reroute={w: {"email": "webhook"} for w in workspaces},
        backoff=Backoff(base_seconds=settings.outbox_backoff_seconds,
                        max_attempts=settings.outbox_max_attempts),
        batch_size=settings.outbox_batch, database_url=settings.database_url,
        approval_workspaces=approval)


def register(app: typer.Typer) -> None:
    """Add `closer dispatch` to the command line."""

    @app.command("dispatch")
    def dispatch(
        once: bool = typer.Option(False, "--once", help="dispatch what is due, then exit"),
        every: float = typer.Option(5.0, "--every", min=0.01, help="seconds between passes"),
    ) -> None:
        """Turn recorded transitions into proofed messages and deliver them."""
        settings = get_settings()
        candidacies = build_candidacies()
        dispatcher = build_dispatcher(candidacies, settings)
        try:
            if once:
                report = dispatcher.run_once()
                typer.echo(("standby (another dispatcher holds the lock)" if report.standby
                            else f"followed {report.notifications} notifications, queued "
                            f"{report.queued}, sent {report.sent}, blocked {report.blocked}, "
                            f"failed {report.failed}, dead-lettered {report.dead_lettered}"))
                return
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            typer.echo(f"dispatch: every {every:g}s on {settings.database_url}")
            try:
                dispatcher.run_forever(every, stop)
            except KeyboardInterrupt:
                pass
        finally:
            dispatcher.release()
            candidacies.close()
