"""`closer model fit` / `closer model check`, and the reports of `--employer model`
(`closer replay` and `closer tune`).  See docs/replay.md."""

from __future__ import annotations

import csv
import io
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from engine.errors import InvalidInput

if TYPE_CHECKING:
    from engine.counterfactual import Outcomes, Records
    from engine.objective import Objective
    from engine.response_model import ResponseModel

console = Console(highlight=False)
model_app = typer.Typer(help="The employer's response model: fit it from the store, check it.",
                        no_args_is_help=True)

REFUSED_EXIT = 3
"""`closer model fit`'s exit code when the store holds too little to fit."""


def _friendly(command: Any) -> Any:
    from api.replay_cli import _friendly as friendly

    return friendly(command)


def load_model(path: Path | None) -> ResponseModel:
    from engine.response_model import ResponseModel

    if path is None:
        raise InvalidInput("--model", "--employer model needs --model FILE "
                                      "(written by `closer model fit`)")
    if not path.is_file():
        raise InvalidInput("--model", f"{path}: no such file")
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        raise InvalidInput("--model", f"{path}: not JSON") from None
    return ResponseModel.from_dict(data)


def _histories(source: str) -> Any:
    from api.replay_cli import open_source
    from engine.replay import candidacy_histories

    return candidacy_histories(open_source(source).batches(None), keep_decisions=True)


@model_app.command("fit")
def fit_command(
    out: Annotated[Path, typer.Option(help="the model file to write (JSON)")],
    source: Annotated[str, typer.Option(help="'store', a .jsonl export or a SQLite file")]
    = "store",
    as_json: Annotated[bool, typer.Option("--json", help="print the fit report as JSON")]
    = False,
) -> None:
    """Fit the discrete-time hazard of the employer's decision from the recorded
    histories; write it with its fit report (coefficients with 95% intervals,
    concordance, calibration by decile)."""
    model = _friendly(_fit)(out, source)
    if as_json:
        sys.stdout.write(orjson.dumps(model.report, option=orjson.OPT_INDENT_2).decode()
                         + "\n")
    else:
        print_fit(model)
        console.print(f"model written to {out}")


def _fit(out: Path, source: str) -> ResponseModel:
    from engine.response_model import ModelRefused, fit

    try:
        model = fit(_histories(source))
    except ModelRefused as refused:
        console.print(f"[red]refused:[/red] {refused}", soft_wrap=True)
        raise typer.Exit(REFUSED_EXIT) from None
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(orjson.dumps(model.as_dict(), option=orjson.OPT_INDENT_2))
    tmp.replace(out)  # never half a model file
    return model


def print_fit(model: ResponseModel) -> None:
    report = model.report or {}
    table = Table(title=f"Response model: {report.get('candidacies')} candidacies, "
                        f"{report.get('person_days')} person-days, "
                        f"{report.get('decisions')} decisions; concordance "
                        f"{report.get('concordance', float('nan')):.3f}",
                  title_justify="left")
    for column in ("hazard of a decision (log-odds)", "coefficient", "95% interval"):
        table.add_column(column, justify="left" if column.startswith("hazard") else "right")
    for row in report.get("hazard", []):
        table.add_row(row["feature"], f"{row['coefficient']:.3f}",
                      f"{row['low']:.3f} .. {row['high']:.3f}")
    for row in report.get("advance", []):
        table.add_row(f"advance share: {row['feature']}", f"{row['coefficient']:.3f}",
                      f"{row['low']:.3f} .. {row['high']:.3f}")
    for name in report.get("not_estimable", []):
        table.add_row(name, "-", "constant in the data")
    console.print(table)
    calibration = Table(title="Calibration by decile of predicted daily hazard (decision)",
                        title_justify="left")
    for column in ("decile", "person-days", "predicted", "observed"):
        calibration.add_column(column, justify="right")
    for row in report.get("calibration", []):
        calibration.add_row(str(row["decile"]), str(row["rows"]), f"{row['predicted']:.4f}",
                            f"{row['observed']:.4f}")
    console.print(calibration)
    print_update_hazard(report)


def print_update_hazard(report: dict[str, Any]) -> None:
    """The update hazard's coefficients, beside the decision's (or why there is none)."""
    rows = report.get("update_hazard")
    if "update_days" not in report:
        console.print("update hazard: none (a model file written before updates were "
                      "modelled; refit with `closer model fit`)")
        return
    if not rows:
        console.print(f"update hazard: none ({report.get('update_note', '')})")
        return
    table = Table(title=f"Update hazard: {report['update_days']} days with an update; "
                        f"concordance {report.get('update_concordance', float('nan')):.3f}",
                  title_justify="left")
    for column in ("hazard of an update (log-odds)", "coefficient", "95% interval"):
        table.add_column(column, justify="left" if column.startswith("hazard") else "right")
    for row in rows:
        interval = f"{row['low']:.3f} .. {row['high']:.3f}"
        table.add_row(row["feature"], f"{row['coefficient']:.3f}",
                      "separated (no update on such days)" if row.get("separated")
                      else interval)
    console.print(table)


@model_app.command("check")
def check_command(
    model: Annotated[Path, typer.Option(help="the model file (`closer model fit --out`)")],
    source: Annotated[str, typer.Option(help="'store', a .jsonl export or a SQLite file")]
    = "store",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Observed (Kaplan-Meier) against predicted share of rounds the employer has
    decided by each business day."""
    _friendly(_check)(model, source, as_json)


def _check(path: Path, source: str, as_json: bool) -> None:
    from engine.response_model import reply_curves

    fitted = load_model(path)
    curves = reply_curves(fitted, _histories(source))
    if as_json:
        sys.stdout.write(orjson.dumps(curves, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    print_update_hazard(fitted.report or {})
    table = Table(title="Employer decided by business day: observed vs predicted",
                  title_justify="left")
    columns = ["business day", "at risk", "observed", "predicted"]
    if curves and "updates_observed" in curves[0]:
        columns += ["updates per round, observed", "predicted"]
    for column in columns:
        table.add_column(column, justify="right")
    for row in curves:
        cells = [str(row["day"]), str(row["at_risk"]), f"{row['observed']:.3f}",
                 f"{row['predicted']:.3f}"]
        if "updates_observed" in row:
            cells += [f"{row['updates_observed']:.3f}", f"{row['updates_predicted']:.3f}"]
        table.add_row(*cells)
    console.print(table)


# -- reports of --employer model ----------------------------------------------------------


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "not reached"
    return f"{value:.1f}" if key.startswith("days") or key == "nudges" else f"{value:.3f}"


def outcomes_dict(records: Records, outcomes: Sequence[Outcomes], *, draws: int,
                  seed: int) -> dict[str, Any]:
    return {"employer": "model", "updates": records.updates, "draws": draws, "seed": seed,
            "candidacies": records.candidacies, "events": records.events,
            "interval": "95% percentile bootstrap over candidacies and draws",
            "policies": [o.as_dict() for o in outcomes]}


def print_outcomes(records: Records, outcomes: Sequence[Outcomes], title: str) -> None:
    from engine.counterfactual import OUTCOMES

    table = Table(title=f"{title} (employer: model, updates: {records.updates}; "
                        f"{records.draws} draws over "
                        f"{records.candidacies} candidacies; 95% bootstrap intervals)",
                  title_justify="left")
    table.add_column("outcome")
    table.add_column("better", justify="center")
    for o in outcomes:
        table.add_column(o.label, justify="right")
    for key, (label, better) in OUTCOMES.items():
        cells = []
        for o in outcomes:
            low, high = o.intervals[key]
            cells.append(f"{_fmt(o.estimates[key], key)} [{_fmt(low, key)}, "
                         f"{_fmt(high, key)}]")
        table.add_row(label, {"higher": "↑", "lower": "↓"}.get(better, "·"), *cells)
    console.print(table)


def outcomes_csv(outcomes: Sequence[Outcomes]) -> str:
    from engine.counterfactual import OUTCOMES

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["employer", "policy"]
    for key in OUTCOMES:
        header += [key, f"{key}_low", f"{key}_high"]
    writer.writerow(header)
    for o in outcomes:
        row: list[Any] = ["model", o.label]
        for key in OUTCOMES:
            row += [o.estimates[key], *o.intervals[key]]
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def write_outcomes_chart(outcomes: Sequence[Outcomes], path: Path) -> None:
    """One panel per outcome: estimates with their 95% intervals, the better direction
    in the panel's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.counterfactual import OUTCOMES

    figure, axes = plt.subplots(2, 5, figsize=(18, 6.5))
    for axis, (key, (label, better)) in zip(axes.flat, OUTCOMES.items(), strict=True):
        for i, o in enumerate(outcomes):
            value = o.estimates[key]
            low, high = o.intervals[key]
            if value is None:
                continue
            err = [[value - (low if low is not None else value)],
                   [(high if high is not None else value) - value]]
            axis.errorbar([i], [value], yerr=err, fmt="o", color=f"C{i % 10}", capsize=4)
        axis.set_title(f"{textwrap.fill(label, 40)}\n("
                       + ("no better direction" if better == "neither"
                          else f"{better} is better") + ")", fontsize=8)
        axis.set_xticks(range(len(outcomes)))
        axis.set_xticklabels([o.label for o in outcomes], fontsize=7, rotation=15)
    figure.suptitle("Replay, employer: model (95% bootstrap intervals)")
    figure.tight_layout(rect=(0, 0, 1, 0.94))
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- tune under the model ---------------------------------------------------------------------


def rank_outcomes(outcomes: Sequence[Outcomes], objective: Objective
                  ) -> list[tuple[Outcomes, bool, bool]]:
    """Best first among those meeting the constraints (then the others), each with
    whether it meets them and whether its difference from the best is inside the noise
    (the paired 95% interval of the difference contains 0)."""
    def value(o: Outcomes) -> float:
        v = o.estimates[objective.outcome]
        if v is None:
            return float("-inf") if objective.maximise else float("inf")
        return v

    meets = {id(o): all(c.holds(o.estimates[c.outcome]) for c in objective.constraints)
             for o in outcomes}
    ordered = sorted(outcomes, key=lambda o: (not meets[id(o)],
                                              -value(o) if objective.maximise else value(o)))
    if not ordered:
        return []
    best = ordered[0]
    out = []
    for o in ordered:
        gap = o.difference(best, objective.outcome) if o is not best else None
        out.append((o, meets[id(o)], gap is not None and gap[0] <= 0.0 <= gap[1]))
    return out
