"""`closer`: the command line.  User mistakes print one clear line, never a traceback."""

from __future__ import annotations

import functools
import re
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

# Only what every `--help` needs is imported here: each command imports the store, the
# engine's application, the web stack etc. in its body, when it runs (tests/test_startup.py).
from api.audit_cli import audit_app
from api.cli_errors import exit_if_chain_broken, fail
from api.outbox_cli import register as register_outbox
from api.policy_cli import policy_app
from api.replay_cli import register as register_replay
from api.roles import Role
from engine.clock import FixedClock
from engine.errors import CloserError, InvalidInput

if TYPE_CHECKING:
    from engine.application import Candidacies, HistoryEntry

app = typer.Typer(help="Closer: the follow-up engine for the weeks after a job interview.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
register_replay(app)
register_outbox(app)
from api.projections_cli import projections_app  # noqa: E402

app.add_typer(projections_app, name="projections")
console = Console()
F = TypeVar("F", bound=Callable[..., Any])


def friendly(command: F) -> F:
    """Print user mistakes and unreachable stores as one line and exit 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (CloserError, ValueError) as error:
            raise fail(error) from None
        except _store_error() as error:
            raise fail(f"the store is not reachable: {error}") from None

    return run  # type: ignore[return-value]


def _store_error() -> type[Exception]:
    """eventsourcing's PersistenceError (an except clause evaluates this only once a
    command has failed, so `--help` never imports the store)."""
    from eventsourcing.persistence import PersistenceError

    return PersistenceError


@app.callback()
def main() -> None:
    """Configure logging once for every command."""
    from pydantic import ValidationError

    from api.logs import configure_logging
    from api.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError as error:
        from adapters.message import plain_error

        # Field names as the variables the user set: "port: ..." reads CLOSER_PORT: ...
        text = re.sub(r"(^|; )([a-z_]+)(?=[:\[.])", lambda m: m[1] + "CLOSER_" + m[2].upper(),
                      plain_error(error))
        raise fail(f"settings: {text}") from None
    configure_logging(settings.log_format, settings.log_level)


@app.command()
@friendly
def demo() -> None:
    """Walk four realistic candidacies through a month of the playbook (the scheduler
    ticking every hour, the outbox delivering), then print their histories and messages."""
    from adapters.outbox_rows import message_rows
    from api.demo import DEMO_DAYS, demo_settings, seed_demo
    from api.outbox_cli import build_dispatcher
    from api.settings import get_settings
    from api.wiring import build_candidacies

    settings = demo_settings(get_settings())
    clock = FixedClock(datetime.now(UTC) - timedelta(days=DEMO_DAYS))
    candidacies = build_candidacies(settings, clock=clock)
    dispatcher = build_dispatcher(candidacies, settings)
    try:
        ids = seed_demo(candidacies, clock, dispatch=dispatcher.run_once,
                        until=datetime.now(UTC))
        for candidacy_id in ids:
            _print_history(candidacies, candidacy_id)
        console.print("\nMessages the outbox handled:")
        for candidacy_id in ids:
            for row in message_rows(candidacies, candidacy_id=candidacy_id):
                detail = (row.summary.get("receipt") or {}).get("detail") or {}
                where = detail.get("txt") or ", ".join(f"{k}={v}" for k, v in detail.items())
                console.print(f"  {row.kind:<22} {row.channel:<9} {row.status:<10} {where}",
                              highlight=False, soft_wrap=True)
    finally:
        dispatcher.release()
        candidacies.close()
    mail = "" if settings.smtp_host else (f"; email went to {settings.tasks_dir}/mail "
                                          "(set CLOSER_SMTP_HOST to send it)")
    console.print(f"\n{len(ids)} candidacies recorded in {settings.database_url}{mail}; "
                  f"see one with: closer history {ids[0]}", highlight=False, soft_wrap=True)


@app.command()
@friendly
def history(candidacy_id: str = typer.Argument(..., help="the candidacy's id")) -> None:
    """Print one candidacy's whole history, oldest first."""
    from api.wiring import build_candidacies

    _print_history(build_candidacies(), candidacy_id)


@app.command("tick")
@friendly
def tick_command(
    now: str = typer.Option(None, help="the moment to decide for (ISO-8601 with offset), not "
                                       "after the store's clock; default: the current time"),
    dry_run: bool = typer.Option(False, "--dry-run", help="decide and print what would be "
                                                          "recorded; write nothing"),
    on_copy: Annotated[Path | None, typer.Option(
        "--on-copy", help="copy the store's candidacies and policies into this new SQLite "
                          "file and tick there (any --now); the store is only read")] = None,
) -> None:
    """Record every action due now (thank-yous, nudges, stalls, reminders) once.

    The live store refuses a --now after its clock (exit 2): future-dated decisions would
    push real due work out; use --dry-run or --on-copy to look ahead."""
    from api.wiring import build_candidacies
    from engine.scheduler import tick

    moment = _moment(now) if now else None
    if on_copy is not None:
        candidacies = _copy_of_store(on_copy)
        where = f" on the copy {on_copy} (the store is untouched)"
    else:
        candidacies = build_candidacies()
        where = ""
    try:
        if moment is not None and on_copy is None and not dry_run:
            clock = store_clock(candidacies)
            if moment > clock:
                raise fail(f"--now {moment.isoformat()} is after the store's clock "
                           f"({clock.isoformat()}: the current time, or the latest recorded "
                           "event if later); nothing written: look ahead with --dry-run or "
                           "--on-copy FILE", code=2)
        if dry_run:
            _print_dry_run(candidacies, moment or candidacies.clock.now())
            return
        report = tick(candidacies, moment)
    finally:
        candidacies.close()
    done = ", ".join(f"{n} {kind}" for kind, n in sorted(report.actions.items())) or "nothing"
    unreadable = (f"; {report.corrupt} passed over, their history cannot be read (see "
                  "closer doctor)" if report.corrupt else "")
    if report.skipped_broken:
        unreadable += (f"; {report.skipped_broken} passed over, their chain is broken (see "
                       "closer audit verify)")
    console.print(f"{report.now.isoformat()}: {report.candidacies} candidacies due; "
                  f"recorded {done}; {report.conflicts} changed concurrently (next tick)"
                  f"{unreadable}{where}", highlight=False, soft_wrap=True)


def store_clock(candidacies: Candidacies) -> datetime:
    """The store's clock: the current time, or the latest recorded event's time if later
    (a store that already holds later events must not be ticked before them either)."""
    now = candidacies.clock.now()
    latest = candidacies.recorder.latest_recorded_at()
    return max(now, latest) if latest is not None else now


def _print_dry_run(candidacies: Candidacies, moment: datetime, page: int = 200) -> None:
    """What a tick at ``moment`` would record: the application's decide step, never its
    record step."""
    due = list(candidacies.due_ids(moment))
    counts: Counter[str] = Counter()
    for start in range(0, len(due), page):
        decisions = candidacies.decide_policies(due[start:start + page], moment)
        for candidacy_id, actions in decisions.run.applied.items():
            for action in actions:
                counts[action.kind] += 1
                console.print(f"{candidacy_id}  {action.kind:<18} rule {action.rule}, due "
                              f"{action.due_at.isoformat()}", highlight=False, soft_wrap=True)
    done = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "nothing"
    console.print(f"dry run at {moment.isoformat()}: {len(due)} candidacies due; would record "
                  f"{done}; nothing written", highlight=False, soft_wrap=True)


def _copy_of_store(path: Path) -> Candidacies:
    """A new SQLite store at ``path`` holding the configured store's candidacies and
    published policies (no tokens, no messages; its outbox starts past them)."""
    import tempfile

    from adapters.outbox import TRACKING_NAME
    from api.replay_cli import store_source
    from api.settings import get_settings
    from api.wiring import build_candidacies
    from engine.history_io import export, import_file

    if path.exists():
        raise InvalidInput("--on-copy", f"{path} already exists: name a new file")
    copy = build_candidacies(get_settings().model_copy(
        update={"database_url": f"sqlite:///{path.resolve()}"}))
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as exported:
        export(store_source().batches(None), exported, with_policies=True)
        exported.flush()
        import_file(copy, exported.name, followers=(TRACKING_NAME,))
    return copy


@app.command()
@friendly
def scheduler(
    every: float = typer.Option(60.0, help="seconds between ticks", min=1.0),
) -> None:
    """Run the scheduler in a loop (Ctrl-C stops it)."""
    import threading

    from api.settings import get_settings
    from api.wiring import build_candidacies
    from engine.scheduler import run_forever

    stop = threading.Event()
    console.print(f"scheduler: ticking every {every:g}s on {get_settings().database_url}")
    try:
        run_forever(build_candidacies(), every, stop)
    except KeyboardInterrupt:
        stop.set()


def _moment(text: str) -> datetime:
    from engine.values import in_range

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("--now", f"{text!r} is not an ISO-8601 moment") from None
    if moment.tzinfo is None:
        raise InvalidInput("--now", "needs a UTC offset, e.g. 2026-12-01T09:00:00+00:00")
    return in_range(moment, "--now")


def _print_history(candidacies: Candidacies, candidacy_id: str) -> None:
    row = candidacies.row(candidacy_id)
    if row is None:
        raise InvalidInput("candidacy_id", f"no candidacy {candidacy_id}")
    entries = candidacies.history(candidacy_id, row.workspace)
    from api.audit_service import chain_warning

    broken = chain_warning(candidacies, candidacy_id)
    if broken is not None:
        console.print(f"[red]warning: this candidacy's chain is broken, its history is not "
                      f"what was recorded[/red]: {broken.line()} (closer audit verify)",
                      highlight=False, soft_wrap=True)
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
        applied = f", applied {data['applied_on']}" if data.get("applied_on") else ""
        return f"{data['candidate']['name']} met {names} ({data['interview']['format']}{applied})"
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


@app.command()
@friendly
def doctor(
    as_json: bool = typer.Option(False, "--json", help="print the findings as JSON"),
) -> None:
    """Decode every stored event and snapshot; list each one that cannot be read (exit
    code 1 when any), and the notifications the outbox passed over."""
    import json
    from dataclasses import asdict

    from adapters.outbox_rows import passed_over
    from api.wiring import build_candidacies
    from engine.doctor import diagnose

    candidacies = build_candidacies()
    try:
        diagnosis = diagnose(candidacies)
        passed = passed_over(candidacies)
    finally:
        candidacies.close()
    if as_json:
        typer.echo(json.dumps({**diagnosis.as_dict(), "passed_over": [
            {**asdict(p), "at": p.at.isoformat()} for p in passed]}, indent=2))
    else:
        for bad in diagnosis.undecodable:
            at = f", notification {bad.notification_id}" if bad.notification_id else ""
            typer.echo(f"undecodable {bad.record}: {bad.originator_id} version {bad.version}"
                       f"{at} ({bad.topic}): {bad.error}")
        for one in passed:
            typer.echo(f"passed over by the {one.reader.lower()}: notification "
                       f"{one.notification_id} ({one.originator_id} version "
                       f"{one.originator_version}) at {one.at.isoformat()}")
        typer.echo(f"scanned {diagnosis.events} events and {diagnosis.snapshots} snapshots: "
                   + (f"{len(diagnosis.undecodable)} cannot be read"
                      if diagnosis.undecodable else "all readable"))
    if not diagnosis.healthy:
        raise typer.Exit(1)


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
    from api.wiring import build_candidacies
    from engine.values import Actor

    candidacies = build_candidacies()
    try:
        row = candidacies.row(candidacy_id) if _is_uuid(candidacy_id) else None
        if row is None:
            raise InvalidInput("candidacy_id", f"no candidacy {candidacy_id}")
        exit_if_chain_broken(candidacies, candidacy_id)
        outcome = candidacies.correct_details(
            Actor(user=by, workspace=row.workspace), candidacy_id,
            {"person": person, "field": field, "value": value})
    finally:
        candidacies.close()
    console.print(f"{candidacy_id}: {person}'s {field} corrected (version {outcome.version})",
                  highlight=False)


@app.command()
@friendly
def erase(
    candidacy: str = typer.Option(..., "--candidacy", help="the candidacy's id"),
    reason: str = typer.Option(..., help="why (recorded on the erasure event: no personal "
                                         "data, e.g. the request's reference)"),
    by: str = typer.Option("closer-admin", help="who erases (recorded)"),
) -> None:
    """Erase a candidate's personal data: destroy the candidacy's key (its messages' too),
    record the erasure, clear the read models' and outbox's plaintext copies in the same
    transaction, then rewrite the store's files (SQLite: VACUUM and an emptied WAL;
    PostgreSQL: VACUUM FULL of the touched tables).  Stages, times and the audit stay.
    Run again on an erased candidacy, it only rewrites the files again."""
    from api.audit_service import erase as erase_candidacy
    from api.wiring import build_candidacies
    from engine.values import Actor

    candidacies = build_candidacies()
    try:
        row = candidacies.row(candidacy) if _is_uuid(candidacy) else None
        if row is None:
            raise InvalidInput("candidacy", f"no candidacy {candidacy}")
        outcome, files = erase_candidacy(candidacies, Actor(user=by, workspace=row.workspace),
                                         candidacy, reason, again=True)
        done = (f"{candidacy}: already erased" if outcome is None else
                f"{candidacy}: erased (version {outcome.version}, stage {outcome.stage})")
    finally:
        candidacies.close()
    console.print(f"{done}; store rewritten: {_scrubbed(files)}", highlight=False,
                  soft_wrap=True)


def _scrubbed(files: dict[str, Any]) -> str:
    if files["store"] == "sqlite":
        if "wal_truncated" not in files:
            return "nothing to do (in memory)"
        vacuum = "VACUUM done" if files["vacuumed"] else \
            "NOT vacuumed (the events table has no index: VACUUM could renumber it)"
        wal = "WAL emptied" if files["wal_truncated"] else \
            "WAL NOT emptied (another process reads it: run again when it is idle)"
        return f"{vacuum}, {wal}"
    if files["store"] == "postgresql":
        return f"VACUUM FULL of {', '.join(files['vacuumed'])} (see docs/audit.md on the WAL)"
    return "nothing to do (in memory)"


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
    from api.auth import create_token
    from api.wiring import build_candidacies

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
    from api.auth import revoke_token
    from api.wiring import build_candidacies

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
    from api.settings import get_settings

    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items()
                 if v is not None}
    settings = get_settings().model_copy(update=overrides)
    from api.app import serve as serve_api  # FastAPI and uvicorn: only for this command

    serve_api(settings, demo=demo, echo=typer.echo)


def run() -> None:  # pragma: no cover - console entry for `python -m api.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
