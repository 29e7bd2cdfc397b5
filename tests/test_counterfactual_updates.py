"""Employer updates in the response model (issue 18): the update hazard is fitted and
reported beside the decision's; model mode can draw the last round's updates from it
(``updates=True``, ``--updates model``) without touching the decision draws; the
default keeps today's figures bit for bit (fixed figures from the code before updates
were modelled); an older model file loads, and drawing updates refuses it clearly."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import policy_variant
from typer.testing import CliRunner

from api.cli import app as cli
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.counterfactual import model_replay, summarise
from engine.errors import InvalidInput
from engine.policy import CadencePolicy, default_policy
from engine.replay import SQLiteSource, candidacy_histories
from engine.response_model import UPDATE_FEATURES, ResponseModel, fit
from engine.simulation import simulate
from engine.store import eventsourcing_env

runner = CliRunner()
UNTIL = datetime(2027, 6, 1, tzinfo=UTC)


POLICIES = [default_policy(),
            policy_variant("persistent", pest_line__max_nudges=6, stall__grace_business_days=10),
            policy_variant("brief", pest_line__max_nudges=1,
                           patience__window_without_timeline_weeks=2)]


def _store(tmp_path: Path, count: int, seed: int, effect: float = 1.0) -> SQLiteSource:
    app = Candidacies(eventsourcing_env(f"sqlite:///{tmp_path}/a.db"),
                      clock=FixedClock(datetime(2026, 1, 1, tzinfo=UTC)))
    simulate(app, count, seed, policy=default_policy(), employer=ResponseModel.truth(effect))
    app.close()
    return SQLiteSource(f"{tmp_path}/a.db")


def _fit(source: SQLiteSource) -> ResponseModel:
    return fit(candidacy_histories(source.batches(None), keep_decisions=True))


def _digest(rows: list[tuple[Any, ...]]) -> str:
    """The decision outcomes of one policy and draw (the row's first 8 columns)."""
    cols = [[r[0], r[1], r[2], round(r[3], 9), r[4], r[5], r[6], r[7]] for r in rows]
    return hashlib.sha256(json.dumps(cols).encode()).hexdigest()[:16]


# Worked out on the code before updates were modelled (main at 271b976; the same at
# b56ff47): per policy and draw, share advanced x 240, stalled, nudges, and the digest
# of every decision outcome.
FIXED = [[(76, 18, 335, "be58ef9710e2b2e6"), (76, 18, 335, "67618f04dfe32825")],
         [(76, 2, 369, "fd395860cd5eaff9"), (83, 3, 362, "90e7dc8b000eadba")],
         [(68, 55, 227, "9d713e75c5496e21"), (70, 54, 227, "33114d9c0197cfba")]]


ON_FIXED = [[(41, "8291e8e15130b6f7"), (41, "d7a03e3af9ec718a")],
            [(43, "d8c95c39d97619b3"), (42, "6982816eaa1999c9")],
            [(40, "e1b4b46908e91768"), (40, "9cda7df6de2383b0")]]


def _digest_all(rows: list[tuple[Any, ...]]) -> str:
    """Every outcome of one policy and draw (the whole row)."""
    cols = [[*r[:3], round(r[3], 9), *r[4:]] for r in rows]
    return hashlib.sha256(json.dumps(cols).encode()).hexdigest()[:16]


def test_model_mode_keeps_its_figures_and_drawing_updates_keeps_the_decisions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.counterfactual as counterfactual

    drawn: list[list[Any]] = []

    class Recording(counterfactual.EmployerDraw):  # type: ignore[misc]
        __slots__ = ()

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            drawn[-1].append((self.thresholds, self.kind_u, self.minute))

    monkeypatch.setattr(counterfactual, "EmployerDraw", Recording)
    source = _store(tmp_path, 240, 6)
    model = _fit(source)
    assert model.update is not None
    drawn.append([])
    off = model_replay(source, POLICIES, model, draws=2, seed=7, until=UNTIL)
    drawn.append([])
    on = model_replay(source, POLICIES, model, draws=2, seed=7, until=UNTIL, updates=True)
    assert (off.updates, on.updates) == ("recorded", "model")
    # The default: the figures of the code before updates were modelled, bit for bit.
    for p, per_draw in enumerate(FIXED):
        for r, (advanced, stalled, nudges, digest) in enumerate(per_draw):
            rows = off.rows[p][r]
            assert (sum(x[0] for x in rows), sum(x[1] for x in rows),
                    sum(x[5] for x in rows), _digest(rows)) == (advanced, stalled, nudges,
                                                                digest), (p, r)
    estimates = summarise(off, replicates=50, seed=1)[0].estimates
    assert estimates["advanced"] == pytest.approx(0.316667, abs=1e-6)
    assert estimates["updates"] == pytest.approx(41 / 240)
    # Drawing updates: the decision's draws (every uniform, the kind's, the minute) are
    # the same, from their own streams.
    assert len(drawn[0]) == 480 and drawn[0] == drawn[1]
    # Under the live policy, given the record, the updates and decisions are as recorded.
    assert on.rows[0] == off.rows[0]
    # Under another, a moved update can still move a decision, only through the policy
    # (the playbook waits after an update before nudging): here a handful of rows.
    moved = sum(a[:8] != b[:8] for p in (1, 2) for r in range(2)
                for a, b in zip(off.rows[p][r], on.rows[p][r], strict=True))
    assert moved <= 0.02 * 4 * 240
    # The drawn updates' figures as the code before it was made cheaper (main at 4e0ca66):
    # per policy and draw, the updates and the digest of every outcome.
    assert [[(sum(x[8] for x in rows), _digest_all(rows)) for rows in per_draw]
            for per_draw in on.rows] == ON_FIXED


def test_a_nudge_can_bring_an_update_and_counts_in_the_pester_load(tmp_path: Path) -> None:
    source = _store(tmp_path, 220, 5)
    model = _fit(source)
    assert model.update is not None
    eager = policy_variant("eager", patience__first_nudge_without_timeline_business_days=1,
                           nudge__spacing_business_days=1, pest_line__max_nudges=6,
                           patience__first_nudge_after_timeline_min_business_days=0)
    answering = ResponseModel(model.coefficients, model.advance, covariance=model.covariance,
                              update={**model.update, "nudge_recent": 4.0},
                              update_covariance=None)

    def totals(m: ResponseModel, policy: CadencePolicy) -> tuple[int, int]:
        records = model_replay(source, [policy], m, draws=1, seed=2, until=UNTIL,
                               updates=True)
        rows = records.rows[0][0]
        return sum(r[8] for r in rows), sum(r[9] for r in rows)

    quiet_updates, _ = totals(model, eager)
    loud_updates, loud_pester = totals(answering, eager)
    assert loud_updates > quiet_updates + 20
    # Recorded updates are what the live policy's draws reproduce, whatever the effect.
    assert totals(answering, default_policy())[0] == totals(model, default_policy())[0]
    assert loud_pester >= loud_updates // 2


def test_ground_truth_the_simulator_s_updates_do_not_answer_nudges(tmp_path: Path) -> None:
    """The simulator's updates fall at times that do not depend on nudges: the fitted
    update hazard's nudge terms cover 0 (2,000 candidacies, a known decision nudge
    effect of 1, fixed seed)."""
    model = _fit(_store(tmp_path, 2000, 11))
    report = model.report or {}
    rows = {r["feature"]: r for r in report["update_hazard"]}
    assert set(rows) <= set(UPDATE_FEATURES)
    for name in ("nudges", "nudge_recent"):
        assert rows[name]["low"] <= 0.0 <= rows[name]["high"], rows[name]
    assert report["update_days"] > 300
    # The decision's nudge effect is still recovered beside it.
    (recent,) = [r for r in report["hazard"] if r["feature"] == "nudge_recent"]
    assert recent["low"] <= 1.0 <= recent["high"]


def test_an_older_model_file_loads_and_drawing_updates_refuses_it(tmp_path: Path) -> None:
    source = _store(tmp_path, 60, 3)
    truth = ResponseModel.truth(1.0)
    old = truth.as_dict()
    for key in ("update", "update_covariance"):
        old.pop(key)
    old["version"] = 1
    loaded = ResponseModel.from_dict(old)
    assert loaded.update is None
    assert model_replay(source, POLICIES[:1], loaded, draws=1, seed=1,
                        until=UNTIL).candidacies == 60
    with pytest.raises(InvalidInput, match="no update hazard"):
        model_replay(source, POLICIES[:1], loaded, draws=1, seed=1, until=UNTIL,
                     updates=True)
    saved = ResponseModel.from_dict(json.loads(json.dumps(_fitted_dict(source))))
    assert saved.update is not None and saved.update_covariance is not None


def _fitted_dict(source: SQLiteSource) -> dict[str, Any]:
    return ResponseModel(ResponseModel.truth(0.0).coefficients,
                         update=dict.fromkeys(UPDATE_FEATURES, -3.0),
                         update_covariance=[[0.0] * len(UPDATE_FEATURES)
                                            for _ in UPDATE_FEATURES]).as_dict()


def test_the_update_hazard_through_the_cli(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from api.settings import get_settings

    monkeypatch.setenv("CLOSER_DATABASE_URL", f"sqlite:///{tmp_path}/closer.db")
    monkeypatch.setenv("CLOSER_LOG_LEVEL", "error")
    get_settings.cache_clear()
    try:
        result = runner.invoke(cli, ["simulate", "--candidacies", "220", "--seed", "3",
                                     "--nudge-effect", "1.0"])
        assert result.exit_code == 0, result.output
        path = tmp_path / "model.json"
        result = runner.invoke(cli, ["model", "fit", "--out", str(path)])
        assert result.exit_code == 0, result.output
        assert "Update hazard" in result.output and "hazard of an update" in result.output
        assert json.loads(path.read_text())["version"] == 2
        result = runner.invoke(cli, ["model", "check", "--model", str(path)])
        assert result.exit_code == 0 and "Update hazard" in result.output
        result = runner.invoke(cli, ["model", "check", "--model", str(path), "--json"])
        row = json.loads(result.output)[-1]
        assert row["updates_observed"] == pytest.approx(row["updates_predicted"], abs=0.1)
        common = ["-p", "default", "--employer", "model", "--model", str(path), "--draws",
                  "1", "--until", "2027-06-01", "--workers", "1", "--json"]
        recorded = json.loads(runner.invoke(cli, ["replay", *common]).output)
        drawn = json.loads(runner.invoke(cli, ["replay", *common, "--updates",
                                               "model"]).output)
        assert (recorded["updates"], drawn["updates"]) == ("recorded", "model")
        (a,), (b,) = recorded["policies"], drawn["policies"]
        assert a["updates"]["better"] == "neither" and a["pester_load"]["better"] == "lower"
        assert a["advanced"] == b["advanced"]  # the live policy: as recorded either way

        old = json.loads(path.read_text())
        for key in ("update", "update_covariance"):
            old.pop(key)
        old["version"] = 1
        for key in [k for k in old["report"] if k.startswith("update")]:
            old["report"].pop(key)
        path.write_text(json.dumps(old))
        result = runner.invoke(cli, ["replay", *common])
        assert result.exit_code == 0, result.output
        result = runner.invoke(cli, ["replay", *common, "--updates", "model"])
        assert result.exit_code == 1 and "no update hazard" in result.output
        result = runner.invoke(cli, ["model", "check", "--model", str(path)])
        assert "written before updates were modelled" in result.output
        result = runner.invoke(cli, ["replay", "-p", "default", "--updates", "model"])
        assert result.exit_code == 1 and "--employer model" in result.output
    finally:
        get_settings.cache_clear()


def test_ground_truth_a_known_update_nudge_effect_is_recovered(tmp_path: Path) -> None:
    """The simulator's employer can answer nudges with updates (``update_nudge_effect``,
    drawn from `TRUE_UPDATE_DEFAULTS`): the fitted effect's interval covers the truth
    and excludes 0 (2,000 candidacies, fixed seed)."""
    app = Candidacies(eventsourcing_env(f"sqlite:///{tmp_path}/a.db"),
                      clock=FixedClock(datetime(2026, 1, 1, tzinfo=UTC)))
    simulate(app, 2000, 11, policy=default_policy(),
             employer=ResponseModel.truth(1.0, update_nudge_effect=1.0))
    app.close()
    report = _fit(SQLiteSource(f"{tmp_path}/a.db")).report or {}
    (recent,) = [r for r in report["update_hazard"] if r["feature"] == "nudge_recent"]
    assert 0.0 < recent["low"] <= 1.0 <= recent["high"], recent


def test_ground_truth_drawn_updates_predict_another_policy_s_updates(
        tmp_path: Path) -> None:
    """Simulate the playbook with employers whose updates answer nudges (U = 2), fit,
    replay three other policies with drawn updates, and simulate each directly on the
    same employer seeds: the true updates per candidacy and share advanced lie inside
    the predicted 95% intervals."""
    from engine.simulation import simulate_in_memory
    from tests.test_counterfactual import PAIRS

    truth = ResponseModel.truth(1.0, update_nudge_effect=2.0)
    count, seed = 500, 12
    app = Candidacies(eventsourcing_env(f"sqlite:///{tmp_path}/a.db"),
                      clock=FixedClock(datetime(2026, 1, 1, tzinfo=UTC)))
    simulate(app, count, seed, policy=default_policy(), employer=truth)
    app.close()
    source = SQLiteSource(f"{tmp_path}/a.db")
    outcomes = summarise(model_replay(source, list(PAIRS.values()), _fit(source), draws=3,
                                      seed=3, until=UNTIL, updates=True),
                         replicates=200, seed=5)
    for (name, policy), predicted in zip(PAIRS.items(), outcomes, strict=True):
        updates = advanced = 0
        for _world, candidacy in simulate_in_memory(count, seed, policy, employer=truth):
            updates += sum(1 for e in candidacy.pending_events
                           if type(e).__name__ == "ReplyReceived" and e.kind == "update")
            advanced += (candidacy.outcome or {}).get("kind") == "advanced"
        for key, true in (("updates", updates / count), ("advanced", advanced / count)):
            low, high = predicted.intervals[key]
            assert low is not None and high is not None
            assert low <= true <= high, (name, key, true, low, high)


def test_drawn_updates_are_the_same_in_worker_processes(tmp_path: Path) -> None:
    truth = ResponseModel.truth(1.0, update_nudge_effect=1.0)
    app = Candidacies(eventsourcing_env(f"sqlite:///{tmp_path}/a.db"),
                      clock=FixedClock(datetime(2026, 1, 1, tzinfo=UTC)))
    simulate(app, 80, 2, employer=truth)
    app.close()
    source = SQLiteSource(f"{tmp_path}/a.db")
    here = model_replay(source, POLICIES[:2], truth, draws=2, seed=1, until=UNTIL,
                        updates=True)
    there = model_replay(source, POLICIES[:2], truth, draws=2, seed=1, until=UNTIL,
                         updates=True, workers=2)
    assert here.rows == there.rows and there.updates == "model"
    assert sum(r[8] for rows in here.rows[0] for r in rows) > 0


def test_the_update_draw_s_day_terms_and_a_cut_draw_are_the_uncut_draw_s() -> None:
    """`UpdateDraw`'s per-day terms, spelled out, are `features`' sum bit for bit (the
    same roundings), and drawing only the days up to ``through`` gives the first days of
    the whole draw (later days never change earlier ones)."""
    import random
    from datetime import date
    from zoneinfo import ZoneInfo

    from engine.response_model import _LOG_DAYS, FEATURES, RoundContext, UpdateDraw, features

    rng = random.Random(4)
    for case in range(60):
        ctx = RoundContext(date(2026, 3, 2 + case % 5), ZoneInfo("Europe/Paris"),
                           {"min_weeks": 1, "max_weeks": 3} if case % 2 else None,
                           1 + case % 3, rng.uniform(-1, 1),
                           rng.choice([None, 4, 11]))
        b = {n: rng.gauss(0, 2) for n in UPDATE_FEATURES}
        b["intercept"] = rng.uniform(-4, 0)
        draw = UpdateDraw(ctx, b, 60, 3.0, random.Random(case))
        g = [b[n] for n in FEATURES]
        assert draw.base == [sum(c * v for c, v in zip(g, features(ctx, day, ()),
                                                        strict=True))
                             + b["log_day_sq"] * _LOG_DAYS[day] ** 2
                             for day in range(1, 61)], case
        nudges = sorted(rng.sample(range(0, 40), case % 4))
        after = rng.choice([0, *nudges])
        whole = draw.days(nudges, after, case % 2)
        for through in (after, after + 1, after + 7, 30, 59, 60, 90):
            assert draw.days(nudges, after, case % 2, through) == [
                d for d in whole if d <= through], (case, through)
