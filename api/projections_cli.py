"""`closer projections run|rebuild|status`: the dashboard's read models (`api.read_models`)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from api.cli_errors import fail

# The read models and the store are imported by the commands that use them, so that
# `closer --help` does not load them (tests/test_startup.py).
NAMES = ("pipeline", "compliance", "timeline", "policies")
"""The read models' names, for the help text (`api.read_models.READ_MODELS`' keys: a
test keeps the two the same)."""

projections_app = typer.Typer(help="The dashboard's read models: follow the history, "
                                   "rebuild them from scratch, see how far they lag.",
                              no_args_is_help=True)
console = Console()



@projections_app.command("run")
def run(
    every: Annotated[float, typer.Option(help="seconds between passes", min=0.0)] = 1.0,
    once: Annotated[bool, typer.Option(help="catch up once and exit")] = False,
    batch: Annotated[int, typer.Option(help="notifications per transaction", min=1)] = 500,
) -> None:
    """Keep every read model current: follow the log, a batch per transaction."""
    from eventsourcing.persistence import PersistenceError

    from api.read_models import follower
    from api.wiring import build_candidacies

    candidacies = build_candidacies()
    try:
        runner = follower(candidacies, batch=batch)
        if once:
            typer.echo(f"followed {runner.run_once()} notifications")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            runner.run_forever(every, stop)
    except (ValueError, PersistenceError) as error:
        raise fail(error) from None
    finally:
        candidacies.close()


@projections_app.command("rebuild")
def rebuild(
    name: Annotated[str | None, typer.Argument(
        help=f"one read model ({', '.join(NAMES)}); all without")] = None,
    batch: Annotated[int, typer.Option(help="notifications per transaction", min=1)] = 2000,
) -> None:
    """Rebuild read models from the whole history: the rows incremental following gives."""
    from eventsourcing.persistence import PersistenceError
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from api.read_models import follower
    from api.wiring import build_candidacies

    candidacies = build_candidacies()
    try:
        runner = follower(candidacies, [name] if name else None, batch=batch)
        top = runner.log_max()
        columns = (TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            for model in runner.models:
                task = progress.add_task(model.name, total=top or 1)

                def advance(at: int, task: TaskID = task) -> None:
                    progress.update(task, completed=at)

                runner.rebuild(model, advance)
                progress.update(task, completed=top or 1)
    except (ValueError, PersistenceError) as error:
        raise fail(error) from None
    finally:
        candidacies.close()


@projections_app.command("status")
def status() -> None:
    """Each read model's position against the log's last notification id (the lag)."""
    from eventsourcing.persistence import PersistenceError
    from rich.table import Table

    from api.read_models import follower
    from api.wiring import build_candidacies

    candidacies = build_candidacies()
    try:
        lags = follower(candidacies).lags()
    except PersistenceError as error:
        raise fail(error) from None
    finally:
        candidacies.close()
    table = Table("read model", "position", "log", "behind")
    for lag in lags:
        table.add_row(lag.name, str(lag.position), str(lag.log_max), str(lag.behind))
    console.print(table)
