"""`closer replay`, `closer tune`, `closer simulate`, `closer export`, `closer import`.

Mounted on the main CLI by `register(app)`.  See docs/replay.md.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.policy_cli import resolve_policy
from engine.errors import InvalidInput

# The policies, replay and the store are imported by the functions that use them, so that
# `closer --help` does not load them (tests/test_startup.py).
if TYPE_CHECKING:
    from engine.policy import CadencePolicy
    from engine.replay import Metrics, PostgresSource, ReplayPolicy, ReplayResult, SQLiteSource
    from engine.simulation import SimulationReport

console = Console(highlight=False)
F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


def register(app: typer.Typer) -> None:
    """Add the replay commands to ``app`` as top-level commands."""
    app.command("replay")(replay_command)
    app.command("tune")(tune_command)
    app.command("simulate")(simulate_command)
    app.command("export")(export_command)
    app.command("import")(import_command)
    from api.model_cli import model_app

    app.add_typer(model_app, name="model")


def _friendly(command: F) -> F:
    """The main CLI's one-line error handling (looked up at call time: api.cli mounts us)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from api.cli import friendly

        return friendly(command)(*args, **kwargs)

    return run  # type: ignore[return-value]


# -- sources and policies -------------------------------------------------------------------------


def store_source() -> SQLiteSource | PostgresSource:
    """The configured store, read directly (the events table the application writes)."""
    from api.settings import get_settings
    from api.wiring import build_candidacies
    from engine.replay import source_for

    app = build_candidacies()  # creates the tables if the store is new
    table = app.recorder.events_table_name
    app.close()
    return source_for(get_settings().database_url, table)


def open_source(name: str) -> Any:
    """``store`` (the configured database), an exported ``.jsonl`` file, or a SQLite file."""
    from engine.replay import JsonlSource, SQLiteSource

    if name == "store":
        return store_source()
    path = Path(name)
    if not path.is_file():
        raise InvalidInput("--source", f"{name}: no such file (use 'store' or a .jsonl export)")
    if path.suffix == ".jsonl":
        return JsonlSource(path)
    return SQLiteSource(path)


def _labelled(names: Sequence[str], policies: Sequence[CadencePolicy]) -> list[ReplayPolicy]:
    from engine.replay import ReplayPolicy

    labels = [f"{p.name} v{p.version}" for p in policies]
    if len(set(labels)) < len(labels):  # two files of one name: tell them apart by file
        labels = [Path(n).stem if Path(n).suffix == ".toml" else n for n in names]
    return [ReplayPolicy(p, label) for p, label in zip(policies, labels, strict=True)]


def _workers(requested: int, source: Any) -> int:
    from engine.replay import JsonlSource

    if requested > 0:
        return requested
    return 1 if isinstance(source, JsonlSource) else min(2, os.cpu_count() or 1)


def _until(text: str | None) -> datetime:
    from engine.replay import parse_moment

    return parse_moment(text, "--until") if text else datetime.now(UTC)


def _with_progress(description: str, total: int, run: Callable[[Callable[[int], None]], R],
                   *, disable: bool = False) -> R:
    """``run(tick)`` under a progress bar on stderr (none when ``disable`` or not a
    terminal); ``tick(n)`` advances it by n."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  disable=disable or not sys.stderr.isatty()) as progress:
        task = progress.add_task(description, total=total)
        return run(lambda n: progress.advance(task, n))


# -- closer replay ---------------------------------------------------------------------------------

ROWS: tuple[tuple[str, str], ...] = (
    ("candidacies", "candidacies"),
    ("rounds", "rounds"),
    ("thank_you_misses", "thank-you deadline misses"),
    ("pester_load", "pester load (nudges before a reply that came)"),
    ("impatience", "impatience (nudges inside the stated timeline)"),
    ("stalls", "stalls"),
    ("premature_stalls", "premature stalls (a reply came later)"),
    ("premature_stalls_advanced", "  of which the reply advanced"),
    ("advanced", "rounds advanced"),
    ("days_to_next_step", "days to the next step (mean)"),
    ("days_to_next_step_median", "days to the next step (median)"),
    ("nudges", "nudges sent"),
    ("reminders", "reminders and alerts"),
    ("superseded", "own messages made redundant"),
)


def replay_command(
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help=(
        "a policy TOML file, 'default', or a published name (name@version); repeat to "
        "compare"))] = None,
    source: Annotated[str, typer.Option(help="'store' (the configured database), an "
                                             "exported .jsonl file, or a SQLite file")] = "store",
    where: Annotated[list[str] | None, typer.Option(help=(
        "keep candidacies whose stage (final recorded), country, workspace or policy "
        "equals, e.g. stage=stalled; repeatable"))] = None,
    since: Annotated[str | None, typer.Option(help="interviewed on or after (ISO date)")] = None,
    until: Annotated[str | None, typer.Option(help=(
        "replay up to this moment (ISO); default: now"))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="print CSV, one row per policy")] = False,
    chart: Annotated[Path | None, typer.Option(help="write a PNG chart comparing them")] = None,
    workers: Annotated[int, typer.Option(help="processes (0: one per core, at most 2)")] = 0,
    check: Annotated[bool, typer.Option("--check", help=(
        "replay each candidacy under its own (live) policy and report every recorded "
        "decision replay does not reproduce, and why; exits 1 if any"))] = False,
    employer: Annotated[str, typer.Option(help=(
        "'recorded': every employer reply as recorded (exact); 'model': the last round's "
        "decision drawn from --model, so nudges can change it"))] = "recorded",
    model: Annotated[Path | None, typer.Option(help="the response model (`closer model "
                                                    "fit --out`), for --employer model")]
    = None,
    draws: Annotated[int, typer.Option(help="seeded draws per policy (--employer model)",
                                       min=1)] = 10,
    seed: Annotated[int, typer.Option(help="the draws' seed (--employer model)")] = 0,
    cluster: Annotated[str | None, typer.Option(help=(
        "a Dask scheduler address: run the partitions there (--employer model)"))] = None,
    updates: Annotated[str, typer.Option(help=(
        "--employer model: 'recorded' keeps the last round's employer updates as recorded "
        "(the default; figures as before), 'model' draws them from the model's update "
        "hazard, so a nudge can bring one"))] = "recorded",
) -> None:
    """Re-run recorded histories under cadence policies: the facts as recorded, the
    policy's decisions re-derived by the same decision function."""
    if check:
        _friendly(_check)(source, until, as_json)
        return
    if not policy:
        _friendly(_no_policy)()
    if employer not in ("recorded", "model"):
        _friendly(_bad_employer)(employer)
    if updates not in ("recorded", "model"):
        _friendly(_bad_updates)(updates)
    if employer == "model":
        _friendly(_replay_model)(policy, source, where or [], since, until, as_json, as_csv,
                                 chart, workers, model, draws, seed, cluster,
                                 updates == "model")
        return
    if updates != "recorded":
        _friendly(_updates_need_model)()
    if cluster is not None:
        _friendly(_cluster_needs_model)()
    _friendly(_replay)(policy, source, where or [], since, until, as_json, as_csv, chart,
                       workers)


def _cluster_needs_model() -> NoReturn:
    raise InvalidInput("--cluster", "runs --employer model's partitions; recorded mode "
                                    "uses the local process pool (--workers)")


def _bad_updates(updates: str) -> NoReturn:
    raise InvalidInput("--updates", f"{updates!r}: use 'recorded' or 'model'")


def _updates_need_model() -> NoReturn:
    raise InvalidInput("--updates", "drawing updates needs --employer model (recorded "
                                    "mode keeps every reply as recorded)")


def _bad_employer(employer: str) -> NoReturn:
    raise InvalidInput("--employer", f"{employer!r}: use 'recorded' or 'model'")


def _replay_model(policy: list[str], source: str, where: list[str], since: str | None,
                  until: str | None, as_json: bool, as_csv: bool, chart: Path | None,
                  workers: int, model: Path | None, draws: int, seed: int,
                  cluster: str | None, draw_updates: bool = False) -> None:
    from api.model_cli import (
        load_model,
        outcomes_csv,
        outcomes_dict,
        print_outcomes,
        write_outcomes_chart,
    )
    from engine.counterfactual import model_replay, summarise
    from engine.replay import Filters

    fitted = load_model(model)
    policies = _labelled(policy, [resolve_policy(p) for p in policy])
    filters = Filters.parse(where, since)
    events = open_source(source)
    records = model_replay(events, policies, fitted, draws=draws, seed=seed,
                           filters=filters, until=_until(until),
                           workers=_workers(workers, events), cluster=cluster,
                           updates=draw_updates)
    outcomes = summarise(records, seed=seed)
    if chart is not None:
        write_outcomes_chart(outcomes, chart)
    if as_json:
        sys.stdout.write(orjson.dumps(outcomes_dict(records, outcomes, draws=draws, seed=seed),
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
    elif as_csv:
        sys.stdout.write(outcomes_csv(outcomes))
    else:
        print_outcomes(records, outcomes, "Replay")
        if chart is not None:
            console.print(f"chart written to {chart}")


def _no_policy() -> NoReturn:
    raise InvalidInput("--policy", "name at least one policy to replay (or use --check)")


def _check(source: str, until: str | None, as_json: bool) -> None:
    """`closer replay --check`: the live policies replayed over the recorded histories."""
    from api.wiring import build_candidacies
    from engine.replay import agreement

    app = build_candidacies()
    try:
        report = agreement(open_source(source),
                           lambda ref: app.policies.get(ref["name"], ref["version"]),
                           until=_until(until))
    finally:
        app.close()
    if as_json:
        sys.stdout.write(orjson.dumps({
            "candidacies": report.candidacies, "agreeing": report.agreeing,
            "differences": [d.as_dict() for d in report.differences]},
            option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        console.print(f"{report.agreeing} of {report.candidacies} candidacies reproduce "
                      "every recorded decision")
        for difference in report.differences:
            console.print(f"{difference.candidacy_id} {difference.key}: {difference.why}")
    if report.differences:
        raise typer.Exit(1)


def _replay(policy: list[str], source: str, where: list[str], since: str | None,
            until: str | None, as_json: bool, as_csv: bool, chart: Path | None,
            workers: int) -> None:
    from engine.replay import Filters, replay

    policies = _labelled(policy, [resolve_policy(p) for p in policy])
    filters = Filters.parse(where, since)
    moment = _until(until)
    events = open_source(source)
    count = _workers(workers, events)
    quiet = as_json or as_csv or not sys.stderr.isatty()
    result = _with_progress("replaying", 0 if quiet else events.count(), lambda tick: replay(
        events, policies, filters=filters, until=moment, workers=count, progress=tick),
        disable=quiet)
    if chart is not None:
        write_chart(result.metrics, chart)
    if as_json:
        sys.stdout.write(orjson.dumps({"employer": "recorded", **result.as_dict()},
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
    elif as_csv:
        sys.stdout.write(metrics_csv(result.metrics))
    else:
        print_table(result, "Replay")
        if chart is not None:
            console.print(f"chart written to {chart}")


def print_table(result: ReplayResult, title: str) -> None:
    table = Table(title=f"{title} (employer: recorded): {result.replayed} of "
                        f"{result.candidacies} candidacies, "
                        f"{result.events} events, {result.seconds:.1f}s", title_justify="left")
    table.add_column("metric")
    for metrics in result.metrics:
        table.add_column(metrics.label, justify="right")
    rows = [m.as_dict() for m in result.metrics]
    for key, label in ROWS:
        table.add_row(label, *(_cell(r[key]) for r in rows))
    for channel in ("email", "voicemail", "card"):
        table.add_row(f"messages by {channel}", *(_cell(r["messages"].get(channel, 0))
                                                   for r in rows))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def metrics_csv(metrics: Sequence[Metrics]) -> str:
    rows = []
    for m in metrics:
        data = {"employer": "recorded", **m.as_dict()}
        messages = data.pop("messages")
        data.update({f"messages_{k}": v for k, v in messages.items()})
        rows.append(data)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


CHARTED = (("thank_you_misses", "thank-you misses"), ("pester_load", "pester load"),
           ("impatience", "impatience"), ("premature_stalls", "premature stalls"),
           ("stalls", "stalls"), ("advanced", "rounds advanced"),
           ("days_to_next_step", "days to next step (mean)"), ("nudges", "nudges"))


def write_chart(metrics: Sequence[Metrics], path: Path) -> None:
    """One small bar chart per metric, the policies side by side (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [m.as_dict() for m in metrics]
    labels = [m.label for m in metrics]
    colours = [f"C{i % 10}" for i in range(len(labels))]
    figure, axes = plt.subplots(2, 4, figsize=(14, 6.5))
    for axis, (key, title) in zip(axes.flat, CHARTED, strict=True):
        values = [r[key] or 0 for r in rows]
        bars = axis.bar(range(len(values)), values, color=colours)
        axis.bar_label(bars, fmt="%g", fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.set_xticks([])
    figure.legend(bars.patches if len(labels) == 1 else axes.flat[0].patches, labels,
                  loc="lower center", ncol=min(len(labels), 4), frameon=False)
    figure.suptitle("Replay, employer: recorded (the same recorded facts under each policy)")
    figure.tight_layout(rect=(0, 0.07, 1, 0.95))
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- closer tune -----------------------------------------------------------------------------------

TUNABLE: dict[str, str] = {
    "first_nudge": "patience.first_nudge_without_timeline_business_days",
    "first_nudge_after_timeline": "patience.first_nudge_after_timeline_min_business_days",
    "window": "patience.window_without_timeline_weeks",
    "spacing": "nudge.spacing_business_days",
    "max_nudges": "pest_line.max_nudges",
    "grace": "stall.grace_business_days",
    "follow_up_first": "follow_up.first_nudge_after_business_days",
    "follow_up_spacing": "follow_up.spacing_business_days",
    "follow_up_max": "follow_up.max_nudges",
    "offer_days": "competing_offer.nudge_business_days_before_deadline",
    "thank_you_days": "thank_you.deadline_days_after_interview",
    "thank_you_in_window": "thank_you.within_send_window",
}
"""Short names ``--vary`` accepts (any dotted policy field path works too)."""


def parse_vary(text: str) -> tuple[str, list[Any]]:
    """``name=2..6`` (whole numbers, inclusive), ``name=2,4,6`` or ``name=true,false``."""
    name, sep, values = text.partition("=")
    name = name.strip()
    path = TUNABLE.get(name, name)
    if not sep or "." not in path:
        raise InvalidInput("--vary", f"{text!r}: use name=LOW..HIGH or name=a,b,c with name "
                                     f"one of {', '.join(TUNABLE)} or a field path")
    values = values.strip()
    low, dots, high = values.partition("..")
    try:
        if dots:
            options: list[Any] = list(range(int(low), int(high) + 1))
        else:
            options = [_value(v.strip()) for v in values.split(",") if v.strip()]
    except ValueError:
        raise InvalidInput("--vary", f"{text!r}: {values!r} is not LOW..HIGH or a list") from None
    if not options:
        raise InvalidInput("--vary", f"{text!r}: no values")
    return path, options


def _value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def variants(base: CadencePolicy, vary: Sequence[tuple[str, list[Any]]]
             ) -> list[tuple[str, CadencePolicy]]:
    """Every combination of the varied fields over ``base``, validated, with a label."""
    from engine.policy import policy_from_dict

    found = []
    for combination in itertools.product(*(options for _, options in vary)):
        data = base.model_dump(mode="json")
        parts = []
        for (path, _), value in zip(vary, combination, strict=True):
            section: dict[str, Any] = data
            *parents, leaf = path.split(".")
            for key in parents:
                child = section.get(key)
                if not isinstance(child, dict):
                    raise InvalidInput("--vary", f"{path}: no such policy field")
                section = child
            if leaf not in section:
                raise InvalidInput("--vary", f"{path}: no such policy field")
            section[leaf] = value
            short = next((k for k, v in TUNABLE.items() if v == path), path)
            parts.append(f"{short}={value}")
        label = " ".join(parts)
        found.append((label, policy_from_dict(data, source=label)))
    return found


def rank(metrics: Sequence[Metrics], objective: Sequence[str]) -> list[Metrics]:
    """Best first: lexicographic on the objective's metrics (ascending; '-name' descending)."""

    def key(m: Metrics) -> tuple[float, ...]:
        data = m.as_dict()
        values = []
        for name in objective:
            sign, field = (-1, name[1:]) if name.startswith("-") else (1, name)
            value = data[field]
            values.append(sign * (value if value is not None else float("inf")))
        return tuple(values)

    return sorted(metrics, key=key)


def parse_objective(text: str) -> list[str]:
    from engine.replay import Metrics

    names = [n.strip() for n in text.split(",") if n.strip()]
    known = {k for k, v in Metrics("x").as_dict().items() if not isinstance(v, (str, dict))}
    for name in names:
        if name.lstrip("-") not in known:
            raise InvalidInput("--objective", f"unknown metric {name!r}; known: "
                                              f"{', '.join(sorted(known))}")
    if not names:
        raise InvalidInput("--objective", "name at least one metric")
    return names


_SHORT = {"premature_stalls": "premature", "pester_load": "pester", "impatience": "impatient",
          "thank_you_misses": "missed", "days_to_next_step": "days"}
"""Column headings of `closer tune`'s table (the JSON keeps the metric names)."""


def tune_command(
    vary: Annotated[list[str], typer.Option(help=(
        "a field and its values: first_nudge=2..6, max_nudges=1,2,3 (see docs/replay.md "
        "for the short names); repeat for a grid"))],
    base: Annotated[str, typer.Option(help="the policy to vary (TOML file or 'default')")]
    = "default",
    objective: Annotated[str, typer.Option(help=(
        "metrics to minimise, in order of importance; prefix '-' to maximise"))]
    = "premature_stalls,pester_load",
    source: Annotated[str, typer.Option(help="'store', a .jsonl export or a SQLite file")]
    = "store",
    where: Annotated[list[str] | None, typer.Option(help="as for replay")] = None,
    since: Annotated[str | None, typer.Option(help="interviewed on or after (ISO date)")] = None,
    until: Annotated[str | None, typer.Option(help="replay up to (ISO); default now")] = None,
    top: Annotated[int, typer.Option(help="rows to show", min=1)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    workers: Annotated[int, typer.Option(help="processes (0: one per core, at most 2)")] = 0,
    employer: Annotated[str, typer.Option(help=(
        "'recorded' (rank by replay's counts) or 'model': rank by the response model's "
        "predicted outcomes, with intervals; the objective is then stated as 'maximise "
        "advanced subject to nudges<=2 and pest_breaches==0'"))] = "recorded",
    model: Annotated[Path | None, typer.Option(help="the response model, for --employer "
                                                    "model")] = None,
    draws: Annotated[int, typer.Option(help="seeded draws per policy (--employer model)",
                                       min=1)] = 10,
    seed: Annotated[int, typer.Option(help="the draws' seed (--employer model)")] = 0,
    cluster: Annotated[str | None, typer.Option(help=(
        "a Dask scheduler address: run the partitions there (--employer model)"))] = None,
    updates: Annotated[str, typer.Option(help=(
        "--employer model: 'recorded' keeps the last round's employer updates as recorded "
        "(the default; figures as before), 'model' draws them from the model's update "
        "hazard, so a nudge can bring one"))] = "recorded",
) -> None:
    """Replay every combination of policy values and rank them by an objective."""
    if employer not in ("recorded", "model"):
        _friendly(_bad_employer)(employer)
    if updates not in ("recorded", "model"):
        _friendly(_bad_updates)(updates)
    if employer == "model":
        _friendly(_tune_model)(vary, base, objective, source, where or [], since, until, top,
                               as_json, workers, model, draws, seed, cluster,
                               updates == "model")
        return
    if updates != "recorded":
        _friendly(_updates_need_model)()
    if cluster is not None:
        _friendly(_cluster_needs_model)()
    _friendly(_tune)(vary, base, objective, source, where or [], since, until, top, as_json,
                     workers)


def _tune_model(vary: list[str], base: str, objective: str, source: str, where: list[str],
                since: str | None, until: str | None, top: int, as_json: bool, workers: int,
                model: Path | None, draws: int, seed: int, cluster: str | None,
                draw_updates: bool = False) -> None:
    from api.model_cli import load_model, rank_outcomes
    from engine.counterfactual import OUTCOMES, model_replay, summarise
    from engine.objective import parse_objective
    from engine.replay import Filters, ReplayPolicy

    goal = parse_objective(objective)
    fitted = load_model(model)
    live = resolve_policy(base)
    grid = variants(live, [parse_vary(v) for v in vary])
    policies = [ReplayPolicy(live, f"live: {live.name} v{live.version}"),
                *(ReplayPolicy(policy, label) for label, policy in grid)]
    events = open_source(source)
    records = model_replay(events, policies, fitted, draws=draws, seed=seed,
                           filters=Filters.parse(where, since), until=_until(until),
                           workers=_workers(workers, events), cluster=cluster,
                           updates=draw_updates)
    ranked = rank_outcomes(summarise(records, seed=seed), goal)
    if as_json:
        data = {"employer": "model", "objective": str(goal), "draws": draws, "seed": seed,
                "candidacies": records.candidacies,
                "ranking": [{**o.as_dict(), "meets_constraints": meets,
                             "inside_the_noise_of_the_best": noise}
                            for o, meets, noise in ranked]}
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    shown = list(dict.fromkeys([goal.outcome, *(c.outcome for c in goal.constraints),
                                "advanced", "days_median", "nudges", "pest_breaches"]))
    table = Table(title=f"{len(ranked)} policies (employer: model, {draws} draws over "
                        f"{records.candidacies} candidacies), ranked to {goal}; "
                        "≈: its difference from the best is inside the noise",
                  title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("policy", overflow="fold", min_width=12)
    table.add_column("meets", justify="center")
    for name in shown:
        arrow = {"higher": "↑", "lower": "↓"}.get(OUTCOMES[name][1], "·")
        table.add_column(f"{name} {arrow}", justify="right")
    for place, (o, meets, noise) in enumerate(ranked[:top], start=1):
        cells = []
        for name in shown:
            value, (low, high) = o.estimates[name], o.intervals[name]
            cells.append("-" if value is None else
                         f"{value:.3g} [{'-' if low is None else f'{low:.3g}'}, "
                         f"{'-' if high is None else f'{high:.3g}'}]")
        table.add_row(f"{place}{' ≈' if noise else ''}", o.label, "yes" if meets else "no",
                      *cells)
    console.print(table)


def _tune(vary: list[str], base: str, objective: str, source: str, where: list[str],
          since: str | None, until: str | None, top: int, as_json: bool, workers: int) -> None:
    from engine.replay import Filters, ReplayPolicy, replay

    order = parse_objective(objective)
    grid = variants(resolve_policy(base), [parse_vary(v) for v in vary])
    policies = [ReplayPolicy(policy, label) for label, policy in grid]
    events = open_source(source)
    filters = Filters.parse(where, since)
    moment = _until(until)
    count = _workers(workers, events)
    result = _with_progress(f"{len(policies)} combinations", events.count(), lambda tick:
                            replay(events, policies, filters=filters, until=moment,
                                   workers=count, progress=tick), disable=as_json)
    ranked = rank(result.metrics, order)
    if as_json:
        data = {"employer": "recorded", "objective": order, "candidacies": result.replayed,
                "ranking": [m.as_dict() for m in ranked]}
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(title=f"{len(ranked)} combinations over {result.replayed} candidacies, "
                        f"ranked by {', '.join(order)}\n(employer: recorded)", title_justify="left")
    shown = list(dict.fromkeys([*(o.lstrip("-") for o in order), "thank_you_misses",
                                "pester_load", "impatience", "premature_stalls", "stalls",
                                "days_to_next_step"]))
    table.add_column("#", justify="right")
    table.add_column("combination", overflow="fold", min_width=12)
    for name in shown:
        table.add_column(_SHORT.get(name, name), justify="right")
    for place, metrics in enumerate(ranked[:top], start=1):
        data = metrics.as_dict()
        table.add_row(str(place), metrics.label, *(_cell(data[n]) for n in shown))
    console.print(table)


# -- closer simulate -------------------------------------------------------------------------------


def simulate_command(
    candidacies: Annotated[int, typer.Option(help="how many candidacies", min=1)],
    seed: Annotated[int, typer.Option(help="the same seed writes the same histories")] = 1,
    country: Annotated[str | None, typer.Option(help=(
        "one country (ISO code) instead of the 25 of the published table"))] = None,
    policy: Annotated[str, typer.Option(help="the live policy (TOML file or 'default')")]
    = "default",
    start: Annotated[str, typer.Option(help="first interviews fall in the year from this "
                                            "date (ISO)")] = "2025-01-06",
    batch: Annotated[int, typer.Option(help="candidacies per transaction", min=1)] = 200,
    nudge_effect: Annotated[float | None, typer.Option(help=(
        "draw the employer's decisions from the known response model, a fresh nudge "
        "adding this much to the daily log-odds of a decision (fading over "
        "DECAY_DAYS); one round per candidacy.  Default: today's fixed decision times"))]
    = None,
    update_nudge_effect: Annotated[float | None, typer.Option(help=(
        "with --nudge-effect: draw the employer's updates from a known update hazard, a "
        "fresh nudge adding this much to its daily log-odds.  Default: updates at times "
        "that ignore nudges, as before"))] = None,
    calibration: Annotated[bool, typer.Option(
        "--calibration", help=(
            "also print, per country, the published days from application to decision "
            "beside the simulated employers', the recorded decisions' and those the "
            "live policy's stalls cut off"))] = False,
) -> None:
    """Write plausible histories into the configured store, through the engine."""
    _friendly(_simulate)(candidacies, seed, country, policy, start, batch, nudge_effect,
                         calibration, update_nudge_effect)


def _simulate(count: int, seed: int, country: str | None, policy: str, start: str,
              batch: int, nudge_effect: float | None = None,
              calibration: bool = False, update_nudge_effect: float | None = None) -> None:
    from api.settings import get_settings
    from api.wiring import build_candidacies
    from engine.replay import parse_moment
    from engine.simulation import MEAN_DAYS, simulate
    from engine.values import LAST_DAY

    last_start = date(LAST_DAY.year - 2, 12, 31)
    code = country.upper() if country else None
    if code is not None and code not in MEAN_DAYS:
        raise InvalidInput("--country", f"{country!r} is not in the published table: "
                                        f"{', '.join(MEAN_DAYS)}")
    live = resolve_policy(policy)
    first_day = parse_moment(start, "--start").date()
    if first_day > last_start:
        # Interviews fall in the year from --start and their follow-up runs for months more.
        raise InvalidInput("--start", f"must be on or before {last_start}, so that "
                                      f"every simulated moment falls before {LAST_DAY}")
    employer = None
    if update_nudge_effect is not None and nudge_effect is None:
        raise InvalidInput("--update-nudge-effect", "needs --nudge-effect (the employer "
                                                    "drawn from a known model)")
    if nudge_effect is not None:
        from engine.response_model import ResponseModel

        for name, effect in (("--nudge-effect", nudge_effect),
                             ("--update-nudge-effect", update_nudge_effect)):
            if effect is not None and not -5.0 <= effect <= 5.0:
                raise InvalidInput(name, "a log-odds effect between -5 and 5")
        employer = ResponseModel.truth(nudge_effect, update_nudge_effect)
    app = build_candidacies()
    report = _with_progress("simulating", count, lambda tick: simulate(
        app, count, seed, policy=live, country=code, start=first_day, batch=batch,
        progress=tick, employer=employer))
    stages = ", ".join(f"{n} {stage}" for stage, n in report.stages.most_common())
    console.print(f"{report.candidacies} candidacies, {report.events} events written to "
                  f"{get_settings().database_url} under {live.name} v{live.version} "
                  f"(seed {seed}): {stages}; {report.decisions_lost_to_stalls} employer "
                  "decisions came after the live policy had stalled")
    if calibration:
        _print_calibration(report, modelled=employer is not None)


def _print_calibration(report: SimulationReport, *, modelled: bool) -> None:
    """Days from application to decision per country: the table's, the simulated
    employers', the store's, and the decisions the stalls cut off from the store."""
    table = Table(title="Days from application to offer or rejection (Glassdoor's measure)",
                  title_justify="left")
    for name in ("country", "published", "employers (n)", "recorded (n)",
                 "cut off by stalls (n)", "recorded vs published"):
        table.add_column(name, justify="left" if name == "country" else "right")

    def cell(mean: float | None, count: int) -> str:
        return "-" if mean is None else f"{mean:.1f} ({count})"

    for code, c in sorted(report.calibration.items(), key=lambda item: -item[1].target):
        gap = "-" if c.recorded_mean is None else f"{c.recorded_mean / c.target - 1:+.0%}"
        table.add_row(code, f"{c.target:.1f}", cell(c.decided_mean, c.decided),
                      cell(c.recorded_mean, c.recorded), cell(c.cut_off_mean, c.cut_off), gap)
    console.print(table)
    if modelled:
        console.print("The employers' decisions came from the response model "
                      "(--nudge-effect), not from the published table.")
    console.print("The record holds no decision that came after a stall (a stalled candidacy "
                  "takes no more replies): those are the slow ones, so the recorded mean "
                  "falls short of the employers' by what the stalls cut off.")


# -- closer export / import ------------------------------------------------------------------------


def export_command(
    out: Annotated[Path | None, typer.Option(help="the .jsonl file (default: stdout)")] = None,
    with_policies: Annotated[bool, typer.Option(
        "--with-policies", help="also the published policies (needed to import candidacies "
                                "on a policy other than the built-in playbook)")] = False,
) -> None:
    """Write the candidacies' events as JSON Lines, one a line, losslessly (never API
    tokens nor outbox messages)."""
    _friendly(_export)(out, with_policies)


def _export(out: Path | None, with_policies: bool) -> None:
    from engine.history_io import export

    source = store_source()
    if out is None:
        export(source.batches(None), sys.stdout.buffer, with_policies=with_policies)
        sys.stdout.buffer.flush()
        return
    with out.open("wb") as file:
        count = export(source.batches(None), file, with_policies=with_policies)
    console.print(f"{count} events written to {out}")


def import_command(
    file: Annotated[Path, typer.Argument(help="a .jsonl file written by `closer export`")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="check the file against the store and say what would be "
                          "imported; write nothing")] = False,
) -> None:
    """Insert exported events into the configured store (rows rebuilt); its outbox starts
    past them, so nothing the history already holds is sent again."""
    _friendly(_import)(file, dry_run)


def _import(file: Path, dry_run: bool) -> None:
    from adapters.outbox import TRACKING_NAME
    from api.wiring import build_candidacies
    from engine.history_io import import_file

    app = build_candidacies()
    try:
        report = import_file(app, file, followers=(TRACKING_NAME,), dry_run=dry_run)
    finally:
        app.close()
    verb = "would be imported (dry run: nothing written)" if dry_run else "imported"
    console.print(f"{report.events} events {verb}: {report.candidacies} candidacies, "
                  f"{report.other_aggregates} other aggregates")
