"""`closer`: the command line.  User mistakes print one clear line, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from uuid import UUID

import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.table import Table

from engine.application import Candidacies, HistoryEntry
from engine.clock import FixedClock
from engine.errors import CloserError, InvalidInput
from engine.values import Actor

from engine.scheduler import run_forever, tick

from api.auth import Role, create_token, revoke_token
from api.demo import seed_demo
from api.logs import configure_logging
from api.policy_cli import policy_app
from api.settings import get_settings
from api.wiring import build_candidacies

app = typer.Typer(help="Closer: the follow-up engine for the weeks after a job interview.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(policy_app, name="policy")
from api.replay_cli import register as register_replay  # noqa: E402
register_replay(app)
from api.outbox_cli import register as register_outbox  # noqa: E402
register_outbox(app)
console = Console()
F = TypeVar("F", bound=Callable[..., Any])


def friendly(command: F) -> F:
    """Print user mistakes and unreachable stores as one line and exit 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (CloserError, ValueError) as error:
            console.print(f"[red]error:[/red] {error}", highlight=False)
        except PersistenceError as error:
            console.print(f"[red]error:[/red] the store is not reachable: {error}",
                          highlight=False)
        raise typer.Exit(1)

    return run  # type: ignore[return-value]


@app.callback()
def main() -> None:
    """Configure logging once for every command."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)


@app.command()
@friendly
def demo() -> None:
    """Walk a few realistic candidacies through the playbook and print their histories."""
    clock = FixedClock(datetime.now(timezone.utc) - timedelta(days=30))
    candidacies = build_candidacies(clock=clock)
    ids = seed_demo(candidacies, clock)
    for candidacy_id in ids:
        _print_history(candidacies, candidacy_id)
    console.print(f"\n{len(ids)} candidacies recorded in {get_settings().database_url}; "
                  f"see one with: closer history {ids[0]}")


@app.command()
@friendly
def history(candidacy_id: str = typer.Argument(..., help="the candidacy's id")) -> None:
    """Print one candidacy's whole history, oldest first."""
    _print_history(build_candidacies(), candidacy_id)


@app.command("tick")
@friendly
def tick_command(
    now: str = typer.Option(None, help="the moment to decide for (ISO-8601 with offset); "
                                       "default: the current time"),
) -> None:
    """Record every action due now (thank-yous, nudges, stalls, reminders) once."""
    moment = _moment(now) if now else None
    candidacies = build_candidacies()
    report = tick(candidacies, moment)
    done = ", ".join(f"{n} {kind}" for kind, n in sorted(report.actions.items())) or "nothing"
    console.print(f"{report.now.isoformat()}: {report.candidacies} candidacies due; "
                  f"recorded {done}; {report.conflicts} changed concurrently (next tick)")


@app.command()
@friendly
def scheduler(
    every: float = typer.Option(60.0, help="seconds between ticks", min=1.0),
) -> None:
    """Run the scheduler in a loop (Ctrl-C stops it)."""
    import threading

    stop = threading.Event()
    console.print(f"scheduler: ticking every {every:g}s on {get_settings().database_url}")
    try:
        run_forever(build_candidacies(), every, stop)
    except KeyboardInterrupt:
        stop.set()


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("--now", f"{text!r} is not an ISO-8601 moment") from None
    if moment.tzinfo is None:
        raise InvalidInput("--now", "needs a UTC offset, e.g. 2026-12-01T09:00:00+00:00")
    return moment


def _print_history(candidacies: Candidacies, candidacy_id: str) -> None:
    row = candidacies.row(candidacy_id)
    if row is None:
        raise InvalidInput("candidacy_id", f"no candidacy {candidacy_id}")
    entries = candidacies.history(candidacy_id, row.workspace)
    table = Table(title=f"{row.candidate} · {row.role} at {row.company} ({row.id})",
                  title_justify="left")
    for column in ("v", "at (UTC)", "event", "stage", "actor", "details"):
        table.add_column(column)
    for entry in entries:
        table.add_row(str(entry.version), entry.at.strftime("%Y-%m-%d %H:%M"), entry.type,
                      entry.stage, _actor(entry), _details(entry))
    console.print(table)


def _actor(entry: HistoryEntry) -> str:
    return entry.actor + (f" for {entry.on_behalf_of}" if entry.on_behalf_of else "")


def _details(entry: HistoryEntry) -> str:
    data = entry.data
    if entry.type == "InterviewRecorded":
        names = ", ".join(i["name"] for i in data["interview"]["interviewers"])
        return f"{data['candidate']['name']} met {names} ({data['interview']['format']})"
    shown = {k: v for k, v in data.items() if v not in (None, [], {}) and k != "occurred_at"}
    text = "; ".join(f"{k}={_short(v)}" for k, v in shown.items())
    if entry.decided_by:
        text += f" [policy {entry.decided_by.get('policy')} rule {entry.decided_by.get('rule')}]"
    return text


def _short(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# -- the HTTP API ------------------------------------------------------------------

@app.command()
@friendly
def correct(
    candidacy_id: str = typer.Argument(..., help="the candidacy's id"),
    person: str = typer.Option(..., help="`candidate`, or an interviewer's name as recorded"),
    field: str = typer.Option(..., help="name, email, phone, title or why_i_fit"),
    value: str = typer.Option(..., help="the right value"),
    by: str = typer.Option(..., help="who corrects it (recorded)"),
) -> None:
    """Correct a recorded contact, name spelling, title or "why I fit" (the original stays
    in the history); then `closer messages retry` or `reroute` a blocked message."""
    candidacies = build_candidacies()
    try:
        row = candidacies.row(candidacy_id) if _is_uuid(candidacy_id) else None
        if row is None:
            raise InvalidInput("candidacy_id", f"no candidacy {candidacy_id}")
        outcome = candidacies.correct_details(
            Actor(user=by, workspace=row.workspace), candidacy_id,
            {"person": person, "field": field, "value": value})
    finally:
        candidacies.close()
    console.print(f"{candidacy_id}: {person}'s {field} corrected (version {outcome.version})",
                  highlight=False)


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


token_app = typer.Typer(help="API tokens (bearer tokens bound to a workspace and a role).",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
@friendly
def token_create(
    workspace: str = typer.Option(..., help="the workspace the token reads and writes"),
    role: Role = typer.Option(..., help="admin and recruiter issue commands; viewer reads"),
    user: str = typer.Option(None, help="who acts with it, as recorded on events "
                                        "(default: ROLE@WORKSPACE)"),
) -> None:
    """Issue an API token and print it once (only its SHA-256 is stored)."""
    candidacies = build_candidacies()
    try:
        token = create_token(candidacies, workspace=workspace, role=role, user=user)
    finally:
        candidacies.close()
    typer.echo(token)
    typer.echo(f"{role.value} token for workspace {workspace!r}: store it now, it is not "
               "shown again.", err=True)


@token_app.command("revoke")
@friendly
def token_revoke(
    token: str = typer.Option(..., prompt=True, hide_input=True,
                              help="the token as printed by `closer token create` (asked "
                                   "for when not given, so it stays out of shell history)"),
    reason: str = typer.Option("revoked", help="why, as recorded on the token's history"),
) -> None:
    """Revoke an API token for good: every server refuses it within CLOSER_TOKEN_CACHE_SECONDS."""
    candidacies = build_candidacies()
    try:
        revoked = revoke_token(candidacies, token, reason=reason)
    finally:
        candidacies.close()
    typer.echo(f"revoked the {revoked.role} token of {revoked.user!r} "
               f"(workspace {revoked.workspace!r})")


@app.command()
@friendly
def serve(
    host: str = typer.Option(None, help="interface to bind (default: CLOSER_HOST or 127.0.0.1)"),
    port: int = typer.Option(None, min=1, max=65535, help="port (default: CLOSER_PORT or 8000)"),
    workers: int = typer.Option(None, min=1, help="worker processes (default: CLOSER_WORKERS "
                                                  "or 1)"),
    demo: bool = typer.Option(False, "--demo", help="on an empty store, load demo candidacies; "
                                                    "print the URL and an admin token"),
) -> None:
    """Serve the HTTP API with uvicorn (SQLite by default, PostgreSQL when configured)."""
    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items()
                 if v is not None}
    settings = get_settings().model_copy(update=overrides)
    from api.app import serve as serve_api  # FastAPI and uvicorn: only for this command

    serve_api(settings, demo=demo, echo=typer.echo)


def run() -> None:  # pragma: no cover - console entry for `python -m api.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
