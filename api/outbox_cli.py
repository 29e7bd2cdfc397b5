"""`closer dispatch`: runs the outbox dispatcher (see `adapters.outbox`)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import typer

from eventsourcing.application import AggregateNotFoundError

from adapters.outbox import Backoff, Dispatcher, messages
from api.settings import Settings, get_settings
from api.wiring import build_candidacies
from engine.errors import CloserError
from engine.values import Actor


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
    """Add `closer dispatch` and `closer messages ...` to the command line."""
    messages_app = typer.Typer(help="Outbound messages: list them, retry a dead letter or a "
                                    "blocked one, approve one awaiting approval, confirm "
                                    "a card or voicemail task done.",
                               no_args_is_help=True)
    app.add_typer(messages_app, name="messages")

    @messages_app.command("list")
    def list_messages(
        status: str = typer.Option(None, help="queued, approval_needed, blocked, sent, "
                                              "failed or dead_letter"),
        candidacy: str = typer.Option(None, help="one candidacy's messages"),
    ) -> None:
        """List messages (dead letters with --status dead_letter), oldest first."""
        candidacies = build_candidacies()
        try:
            rows = messages(candidacies, candidacy_id=candidacy, status=status)
        finally:
            candidacies.close()
        for row in rows:
            problem = row.summary.get("last_error") or "; ".join(
                f["message"] for f in row.summary.get("findings") or [])
            typer.echo(f"{row.id}  {row.status:<15} {row.kind:<22} {row.channel:<9} "
                       f"attempts={row.attempts}  {problem}".rstrip())
        if not rows:
            typer.echo("no messages")

    def _by_hand(action: str, message_id: str, by: str) -> None:
        settings = get_settings()
        candidacies = build_candidacies()
        dispatcher = build_dispatcher(candidacies, settings)
        try:
            if action == "retry":
                dispatcher.retry(message_id, by=by)
            else:
                dispatcher.approve(message_id, by=by)
        except (ValueError, AggregateNotFoundError) as error:
            typer.echo(f"error: {error or 'no message ' + message_id}", err=True)
            raise typer.Exit(1) from None
        finally:
            dispatcher.release()
            candidacies.close()
        typer.echo(f"{message_id}: {'queued again' if action == 'retry' else 'approved'}; "
                   "the next dispatch delivers it")

    @messages_app.command("retry")
    def retry(message_id: str, by: str = typer.Option(..., help="who decides (recorded)")
              ) -> None:
        """Queue a dead-lettered or blocked message again."""
        _by_hand("retry", message_id, by)

    @messages_app.command("approve")
    def approve(message_id: str, by: str = typer.Option(..., help="who approves (recorded)")
                ) -> None:
        """Approve a proofed message waiting for a person's approval."""
        _by_hand("approve", message_id, by)

    @messages_app.command("confirm")
    def confirm(message_id: str, by: str = typer.Option(..., help="who confirms (recorded)"),
                ) -> None:
        """Confirm a card or voicemail task was done: the message is delivered (a
        thank-you's moves its candidacy to thanked or awaiting)."""
        candidacies = build_candidacies()
        try:
            row = next((r for r in messages(candidacies) if r.id == message_id), None)
            if row is None:
                typer.echo(f"error: no message {message_id}", err=True)
                raise typer.Exit(1)
            actor = Actor(user=by, workspace=row.workspace)
            try:
                outcome = candidacies.confirm_message(actor, row.candidacy_id, message_id)
            except CloserError as error:
                typer.echo(f"error: {error}", err=True)
                raise typer.Exit(1) from None
        finally:
            candidacies.close()
        typer.echo(f"{message_id}: confirmed delivered; candidacy {outcome.candidacy_id} "
                   f"is {outcome.stage}")

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
