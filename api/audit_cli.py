"""`closer audit checkpoint|verify|export|check-export|public-key` (docs/audit.md)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli_errors import fail

# The store and the engine are imported by the commands that use them, so that
# `closer --help` does not load them (tests/test_startup.py).
audit_app = typer.Typer(help="The tamper-evident history: signed checkpoints, "
                             "verification, exports an auditor checks offline.",
                        no_args_is_help=True)
console = Console()



def _broken(report: object) -> None:
    findings = report.findings  # type: ignore[attr-defined]
    console.print(f"[red]NOT INTACT[/red]: {len(findings)} finding(s); the first:",
                  highlight=False)
    for finding in findings[:20]:
        console.print(f"  {finding.line()}", highlight=False, soft_wrap=True)


@audit_app.command("checkpoint")
def checkpoint_command() -> None:
    """Verify the log since the last checkpoint and record a signed tree head over it."""
    from eventsourcing.persistence import PersistenceError

    from api.audit_service import record_checkpoint
    from api.wiring import build_candidacies
    from engine.errors import CloserError

    candidacies = build_candidacies()
    try:
        recorded, report = record_checkpoint(candidacies)
    except (CloserError, PersistenceError) as error:
        raise fail(error) from None
    finally:
        candidacies.close()
    if recorded is None:
        _broken(report)
        console.print("no checkpoint recorded: a broken log is never certified",
                      highlight=False)
        raise typer.Exit(1)
    typer.echo(f"checkpoint #{recorded.seq}: {recorded.size} events up to notification "
               f"{recorded.last_notification_id}, root {recorded.root.hex()}")


@audit_app.command("verify")
def verify_command(
    candidacy: Annotated[str | None, typer.Option(
        help="check this candidacy's chain only (not the log's order nor checkpoints)")] = None,
    since: Annotated[int | None, typer.Option(
        help="trust checkpoint N (its signature checked) and read only the log after it")
    ] = None,
    public_key: Annotated[str | None, typer.Option(
        help="the signing key's public half in hex (default: the settings' key file's)")
    ] = None,
    snapshots: Annotated[bool, typer.Option(
        help="also compare each snapshot, and each candidacy's current row, with what "
             "its events make")] = True,
    read_models: Annotated[bool, typer.Option(
        help="also rebuild each read model (the dashboard's tables) from the events up to "
             "its position and compare it row by row with the stored tables")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
) -> None:
    """Check every stored event's chain link and every signed checkpoint; name the first
    altered, removed, reordered or inserted event (exit 1 when there is one)."""
    from eventsourcing.persistence import PersistenceError

    from api.audit_service import verify_store
    from api.wiring import build_candidacies
    from engine.errors import CloserError

    candidacies = build_candidacies()
    try:
        report = verify_store(candidacies, public_key=public_key, since=since,
                              candidacy=candidacy, snapshots=snapshots and candidacy is None,
                              read_models=read_models)
    except (CloserError, PersistenceError, ValueError) as error:
        raise fail(error) from None
    finally:
        candidacies.close()
    if as_json:
        import orjson

        typer.echo(orjson.dumps(report.as_dict()).decode())
    elif report.intact:
        typer.echo(f"intact: {report.events} events, {report.checkpoints_checked} checkpoints"
                   f", {report.snapshots_checked} snapshots, {report.rows_checked} rows, "
                   f"{report.read_model_rows_checked} read-model rows checked")
    else:
        _broken(report)
    if not report.intact:
        raise typer.Exit(1)


def _when(text: str | None, name: str) -> datetime | None:
    from engine.errors import InvalidInput

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(name, f"{text!r} is not an ISO-8601 moment") from None
    if moment.tzinfo is None:
        raise InvalidInput(name, "needs a UTC offset, e.g. 2026-12-01T00:00:00+00:00")
    return moment


@audit_app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="the file to write")],
    candidacy: Annotated[str | None, typer.Option(
        help="one candidacy's events and its messages' (default: every event)")] = None,
    start: Annotated[str | None, typer.Option(
        "--from", help="only events recorded at or after this moment (ISO-8601)")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="only events recorded before this moment (ISO-8601)")] = None,
    as_csv: Annotated[bool, typer.Option(
        "--csv", help="also write FILE.csv, a flat view for spreadsheets (not a proof)")
    ] = False,
) -> None:
    """Record a checkpoint, then write the events with inclusion proofs against it, the
    earlier checkpoints' consistency proofs and the public key (JSON Lines)."""
    from uuid import UUID

    from eventsourcing.persistence import PersistenceError

    from adapters.outbox_rows import message_rows
    from api.audit_key import public_hex, signing_key
    from api.audit_service import record_checkpoint
    from api.settings import get_settings
    from api.wiring import build_candidacies
    from engine.audit_export import write_csv, write_export
    from engine.errors import CloserError, InvalidInput

    candidacies = build_candidacies()
    try:
        since, until = _when(start, "--from"), _when(end, "--to")
        uid = message_ids = None
        if candidacy is not None:
            try:
                uid = UUID(candidacy)
            except ValueError:
                raise InvalidInput("candidacy", f"{candidacy!r} is not a candidacy id") from None
            if candidacies.row(candidacy) is None:
                raise InvalidInput("candidacy", f"no candidacy {candidacy}")
            message_ids = frozenset(UUID(m.id) for m in message_rows(candidacies,
                                                                 candidacy_id=candidacy))
        head, report = record_checkpoint(candidacies)
        if head is None:
            _broken(report)
            console.print("not exported: the log does not verify", highlight=False)
            raise typer.Exit(1)
        key = signing_key(get_settings().audit_key_path())
        earlier = [cp for cp in candidacies.recorder.select_checkpoints() if cp.seq < head.seq]
        with out.open("wb") as target:
            summary = write_export(
                candidacies.recorder, target, head=head, earlier=earlier, sign=key.sign,
                public_key_hex=public_hex(key), candidacy=uid,
                message_ids=message_ids or frozenset(), start=since, end=until,
                created_ms=int(candidacies.clock.now().timestamp() * 1000),
                erased=frozenset(candidacies.erased_ids()))
        if as_csv:
            with out.open("rb") as lines, out.with_suffix(out.suffix + ".csv").open(
                    "w", newline="") as sheet:
                write_csv(iter(lines), sheet)
    except (CloserError, PersistenceError) as error:
        raise fail(error) from None
    finally:
        candidacies.close()
    typer.echo(f"exported {summary.events} events of {summary.candidacies} candidacies to "
               f"{out}, proven against checkpoint #{head.seq} ({head.size} events)")


@audit_app.command("check-export")
def check_export_command(
    file: Annotated[Path, typer.Argument(help="an export `closer audit export` wrote")],
    public_key: Annotated[str | None, typer.Option(
        help="the store's public key in hex (default: the one the export names)")] = None,
) -> None:
    """Verify an export offline: seals, signatures, hashes, inclusion and consistency
    proofs (the same check as `python -m closer_verify FILE`, which needs nothing of
    Closer but `cryptography`)."""
    from closer_verify.__main__ import run

    code = run(str(file), public_key)
    sys.stdout.flush()
    if code:
        raise typer.Exit(code)


@audit_app.command("checkpoints")
def checkpoints_command() -> None:
    """List the recorded checkpoints (the numbers `verify --since` takes)."""
    from datetime import UTC

    from api.wiring import build_candidacies

    candidacies = build_candidacies()
    try:
        recorded = candidacies.recorder.select_checkpoints()
    finally:
        candidacies.close()
    if not recorded:
        typer.echo("no checkpoint yet (closer audit checkpoint records one)")
    for cp in recorded:
        at = datetime.fromtimestamp(cp.timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
        typer.echo(f"#{cp.seq}  {at}  {cp.size} events up to notification "
                   f"{cp.last_notification_id}  root {cp.root.hex()}")


@audit_app.command("public-key")
def public_key_command() -> None:
    """Print the public key (hex) that verifies this store's checkpoints and exports."""
    from api.audit_service import store_public_key

    typer.echo(store_public_key())
