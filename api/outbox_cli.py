"""`closer dispatch` runs the outbox dispatcher; `closer messages list|retry|reroute|edit|
approve|confirm` are a person's hand on its messages (see `adapters.outbox`)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import typer

from api.cli_errors import exit_if_chain_broken, fail

# The outbox, the store and the settings are imported by the commands that use them, so
# that `closer --help` does not load them (tests/test_startup.py).
if TYPE_CHECKING:
    from adapters.outbox import Dispatcher, DispatchReport, OutboxMessage
    from api.settings import Settings

_CANDIDACY_TOPIC = "engine.candidacy:Candidacy."


def build_dispatcher(app: Any, settings: Settings) -> Dispatcher:
    """A dispatcher with every channel configured from ``settings``.  Email without an
    SMTP host goes to the console channel, written to ``TASKS_DIR/mail``: a channel with
    no configured delivery still shows what would have gone, and never fails for it."""
    from adapters.outbox import Backoff, Dispatcher

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
        "console": {"directory": str(tasks / "mail")},
    }
    if settings.webhook_url:
        channels["webhook"] = {"url": settings.webhook_url,
                               "secret": settings.webhook_secret or "",
                               "timeout": settings.smtp_timeout}
    recruiter = ({"name": settings.recruiter_name, "email": settings.recruiter_email}
                 if settings.recruiter_name else None)
    approval = frozenset(w.strip() for w in settings.approval_workspaces.split(",") if w.strip())
    unconfigured = {} if settings.smtp_host else {"email": "console"}
    reroute = ChannelMoves(unconfigured, settings.routes())
    return Dispatcher(
        app, channel_settings=channels, recruiter=recruiter, reroute=reroute,
        backoff=Backoff(base_seconds=settings.outbox_backoff_seconds,
                        max_attempts=settings.outbox_max_attempts),
        batch_size=settings.outbox_batch, database_url=settings.database_url,
        approval_workspaces=approval)


class ChannelMoves(Mapping[str, Mapping[str, str]]):
    """The channel moves of each workspace (`Dispatcher.reroute`): ``every`` for all of
    them (a channel with no configured delivery), then the workspace's own."""

    def __init__(self, every: Mapping[str, str],
                 workspaces: Mapping[str, Mapping[str, str]]) -> None:
        self.every = dict(every)
        self.workspaces = dict(workspaces)

    def __getitem__(self, workspace: str) -> Mapping[str, str]:
        return {**self.every, **self.workspaces.get(workspace, {})}

    def __iter__(self) -> Iterator[str]:
        return iter(self.workspaces)

    def __len__(self) -> int:
        return len(self.workspaces)


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
        from adapters.outbox_rows import message_rows
        from api.wiring import build_candidacies

        candidacies = build_candidacies()
        try:
            rows = message_rows(candidacies, candidacy_id=candidacy, status=status)
        finally:
            candidacies.close()
        for row in rows:
            problem = row.summary.get("last_error") or "; ".join(
                f["message"] for f in row.summary.get("findings") or [])
            version = row.summary.get("version")
            typer.echo(f"{row.id}  {row.status:<15} {row.kind:<22} {row.channel:<9} "
                       f"attempts={row.attempts}"
                       + (f" version={version}" if version is not None else "")
                       + f"  {problem}".rstrip())
        if not rows:
            typer.echo("no messages")

    def _by_hand(message_id: str, done: str, act: Callable[[Dispatcher], Any]) -> None:
        from eventsourcing.application import AggregateNotFoundError

        from adapters.errors import StaleMessage
        from api.settings import get_settings
        from api.wiring import build_candidacies

        settings = get_settings()
        candidacies = build_candidacies()
        dispatcher = build_dispatcher(candidacies, settings)
        try:
            act(dispatcher)
        except (ValueError, LookupError, AggregateNotFoundError, StaleMessage) as error:
            # LookupError: an unknown channel to reroute to.
            raise fail(str(error) or f"no message {message_id}") from None
        finally:
            dispatcher.release()
            candidacies.close()
        typer.echo(f"{message_id}: {done}; the next dispatch delivers it")

    read_at = typer.Option(None, "--version", min=1,
                           help="the version you read it at (`closer messages list`): "
                                "refused if it changed since")

    @messages_app.command("retry")
    def retry(message_id: str, by: str = typer.Option(..., help="who decides (recorded)"),
              reason: str = typer.Option("retried by hand", help="why (recorded)"),
              version: int = read_at) -> None:
        """Queue a dead-lettered or blocked message again, with the corrected details."""
        _by_hand(message_id, "queued again",
                 lambda d: d.retry(message_id, by=by, reason=reason, expected_version=version))

    @messages_app.command("reroute")
    def reroute(message_id: str,
                channel: str = typer.Option(..., help="the channel to send it on instead"),
                by: str = typer.Option(..., help="who decides (recorded)"),
                reason: str = typer.Option("rerouted by hand", help="why (recorded)"),
                version: int = read_at) -> None:
        """Send a dead-lettered or blocked message on another channel, corrected."""
        _by_hand(message_id, f"queued again on {channel}",
                 lambda d: d.reroute_message(message_id, channel, by=by, reason=reason,
                                             expected_version=version))

    @messages_app.command("edit")
    def edit(message_id: str,
             body_file: typer.FileText = typer.Option(
                 ..., "--body-file", help="the whole text, as it will go ('-': stdin)"),
             by: str = typer.Option(..., help="who edits (recorded)"),
             dry_run: bool = typer.Option(False, "--dry-run",
                                          help="proof it and show it; record nothing")
             ) -> None:
        """Replace the text of a message awaiting approval, blocked or dead-lettered with
        your own (proofed first; it goes once approved or retried), as the dashboard's
        edit form and `POST .../messages/{id}/edit` do."""
        from eventsourcing.application import AggregateNotFoundError

        from api.settings import get_settings
        from api.wiring import build_candidacies

        text = body_file.read()
        candidacies = build_candidacies()
        dispatcher = build_dispatcher(candidacies, get_settings())
        try:
            _, rendered, report = dispatcher.edit(message_id, text, by=by, dry_run=dry_run)
        except (ValueError, AggregateNotFoundError) as error:  # EditRefused is a ValueError
            typer.echo(f"error: {str(error) or 'no message ' + message_id}", err=True)
            raise typer.Exit(1) from None
        finally:
            dispatcher.release()
            candidacies.close()
        for finding in report.findings:
            typer.echo(f"finding {finding.code}: {finding.message}")
        if dry_run:
            typer.echo(rendered.body)
            typer.echo(f"{message_id}: not recorded (dry run); proofing "
                       f"{'passed' if report.passed else 'would block it'}")
        else:
            typer.echo(f"{message_id}: edited; it goes with your text once approved or retried")

    @messages_app.command("approve")
    def approve(message_id: str, by: str = typer.Option(..., help="who approves (recorded)"),
                version: int = read_at) -> None:
        """Approve a proofed message waiting for a person's approval (`Dispatcher.approve`,
        the method of the dashboard's form and `POST .../messages/{id}/approve`)."""
        _by_hand(message_id, "approved",
                 lambda d: d.approve(message_id, by=by, expected_version=version))

    @messages_app.command("confirm")
    def confirm(message_id: str, by: str = typer.Option(..., help="who confirms (recorded)"),
                ) -> None:
        """Confirm a card or voicemail task was done: the message is delivered (a
        thank-you's moves its candidacy to thanked or awaiting)."""
        from adapters.outbox_rows import message_rows
        from api.wiring import build_candidacies
        from engine.errors import CloserError
        from engine.values import Actor

        candidacies = build_candidacies()
        try:
            row = next((r for r in message_rows(candidacies) if r.id == message_id), None)
            if row is None:
                raise fail(f"no message {message_id}")
            actor = Actor(user=by, workspace=row.workspace)
            exit_if_chain_broken(candidacies, row.candidacy_id)
            try:
                outcome = candidacies.confirm_message(actor, row.candidacy_id, message_id)
            except CloserError as error:
                raise fail(error) from None
        finally:
            candidacies.close()
        typer.echo(f"{message_id}: confirmed delivered; candidacy {outcome.candidacy_id} "
                   f"is {outcome.stage}")

    @app.command("dispatch")
    def dispatch(
        once: bool = typer.Option(False, "--once", help="dispatch what is due, then exit "
                                                        "(exit 1 when every delivery failed)"),
        every: float = typer.Option(5.0, "--every", min=0.01, help="seconds between passes"),
        dry_run: bool = typer.Option(False, "--dry-run", help="render and proof what a pass "
                                     "would deliver and print it; send and write nothing"),
    ) -> None:
        """Turn recorded transitions into proofed messages and deliver them."""
        from api.settings import get_settings
        from api.wiring import build_candidacies

        settings = get_settings()
        candidacies = build_candidacies()
        dispatcher = build_dispatcher(candidacies, settings)
        try:
            if dry_run:
                _print_preview(dispatcher)
                return
            if once:
                report = dispatcher.run_once()
                typer.echo("standby (another dispatcher holds the lock)" if report.standby
                           else f"followed {report.notifications} notifications, queued "
                           f"{report.queued}, sent {report.sent}, blocked {report.blocked}, "
                           f"failed {report.failed}, dead-lettered {report.dead_lettered}")
                if every_delivery_failed(report):
                    raise fail("every delivery of this pass failed (see closer messages list)")
                return
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            typer.echo(f"dispatch: every {every:g}s on {settings.database_url}")
            with contextlib.suppress(KeyboardInterrupt):
                dispatcher.run_forever(every, stop)
        finally:
            dispatcher.release()
            candidacies.close()


def every_delivery_failed(report: DispatchReport) -> bool:
    """True when a pass tried to deliver and nothing went (all blocked, failed or
    dead-lettered); a pass with nothing due, or waiting for approval, did not fail."""
    unsent = report.blocked + report.failed + report.dead_lettered
    return unsent > 0 and report.sent == 0 and report.awaiting_approval == 0


def preview(dispatcher: Dispatcher) -> list[tuple[OutboxMessage, Any, Any, str | None]]:
    """What one pass would deliver now, each ``(message, rendered, proof, problem)``:
    the messages the unfollowed notifications would queue and the queued ones due,
    rendered and proofed as the pass would.  Reads only: nothing is queued, sent or saved."""
    from pydantic import ValidationError

    from adapters.errors import AdapterError
    from adapters.message import MessageContext, plain_error
    from adapters.outbox import TRACKING_NAME
    from adapters.outbox_rows import deliverable_messages
    from adapters.proofing import prepare

    app = dispatcher.app
    now = app.clock.now()
    recorder = app.recorder
    position = recorder.max_tracking_id(TRACKING_NAME) or 0
    found: dict[UUID, OutboxMessage] = {}
    while page := recorder.select_notifications(start=position, limit=dispatcher.page_size,
                                                inclusive_of_start=False):
        for notification in page:
            if notification.topic.startswith(_CANDIDACY_TOPIC):
                event = app.mapper.to_domain_event(notification)
                for message in dispatcher.messages_for(event, now):
                    if not recorder.select_events(message.id, limit=1):
                        found.setdefault(message.id, message)
        position = page[-1].id
    for row in deliverable_messages(app, now, limit=10_000):
        found.setdefault(UUID(row.id), app.repository.get(UUID(row.id)))
    out: list[tuple[OutboxMessage, Any, Any, str | None]] = []
    for message in found.values():
        try:
            adapter = dispatcher.adapter(message.channel)
            context = MessageContext.model_validate(message.context)
        except (ValidationError, AdapterError, ValueError, TypeError) as error:
            problem = f"cannot build the {message.channel} message: {plain_error(error)}"
            out.append((message, None, None, problem))
            continue
        rendered, proof = prepare(adapter, context, dispatcher.rules)
        out.append((message, rendered, proof, None))
    return out


def _print_preview(dispatcher: Dispatcher) -> None:
    previewed = preview(dispatcher)
    for message, rendered, proof, problem in previewed:
        head = f"{message.id}  {message.kind:<22} {message.channel:<9}"
        if problem is not None:
            typer.echo(f"{head} would be blocked: {problem}")
        elif rendered is None or not proof.passed:
            findings = "; ".join(f.message for f in proof.findings)
            typer.echo(f"{head} would be blocked: {findings}")
        else:
            typer.echo(f"{head} would go to {', '.join(rendered.to)}: {rendered.subject}")
    typer.echo(f"dry run: {len(previewed)} messages would be delivered or blocked; "
               "nothing sent or written")
