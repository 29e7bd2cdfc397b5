"""The two replay modes, the response model and its ground truth (issue 18).

- ``--employer recorded`` (the default) gives today's figures, worked out by hand;
- the simulator's employer follows a known response model, so nudges move decisions;
- ``closer model fit`` recovers the known nudge effect and refuses too little data;
- ground truth: simulate policy A with a known nudge effect, fit, predict policy B;
  simulate B directly with the same employer seeds: the truth lies in the predicted
  95% interval, for more persistent, less persistent and differently spaced B, and with
  no nudge effect the model predicts no difference in when the employer answers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import policy_variant
from typer.testing import CliRunner

from api.cli import app as cli
from api.settings import get_settings
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.counterfactual import _km_quantiles, model_replay, summarise
from engine.errors import InvalidInput
from engine.objective import parse_objective
from engine.policy import CadencePolicy, default_policy
from engine.replay import SQLiteSource, candidacy_histories
from engine.response_model import ModelRefused, ResponseModel, fit
from engine.simulation import generate, simulate, simulate_in_memory
from engine.store import eventsourcing_env
from engine.values import Actor
from tests.builders import interview

runner = CliRunner()
FAR = datetime(2027, 6, 1, tzinfo=UTC)
ONE = [{"name": "Daniel Whitfield", "title": "VP Engineering"}]


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/closer.db"
    monkeypatch.setenv("CLOSER_DATABASE_URL", url)
    monkeypatch.setenv("CLOSER_LOG_LEVEL", "error")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


# -- recorded mode: unchanged ----------------------------------------------------------------


def test_recorded_mode_is_the_default_and_gives_the_figures_worked_out_by_hand(
        sqlite_url: str, coach: Actor, tmp_path: Path) -> None:
    clock = FixedClock(at(5, 10))
    app = Candidacies(eventsourcing_env(sqlite_url), clock=clock)
    data = interview(interviewed_at=at(5, 9).isoformat(), format="video", interviewers=ONE,
                     timeline=None)
    cid = app.record_interview(coach, data).candidacy_id
    app.record_no_hesitations(coach, cid)
    app.close_next_step(coach, cid, "Call with the hiring manager")
    app.send_thank_you(coach, cid, "email")
    clock.set(at(15, 11))
    app.receive_reply(coach, cid, "advanced", note="their word")
    app.close()

    outputs = []
    for mode in ([], ["--employer", "recorded"]):
        result = runner.invoke(cli, ["replay", "-p", "default", "--json", "--until",
                                     "2027-01-01", *mode])
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.output))
    default, recorded = outputs
    assert default["policies"] == recorded["policies"]
    assert default["employer"] == recorded["employer"] == "recorded"
    (playbook,) = recorded["policies"]
    # First nudge 7 business days after the thank-you (Wed 14 Jan 10:00, voicemail then
    # email), the employer's recorded advance on Thu 15 Jan 11:00 kept where it was.
    assert playbook["nudges"] == 1 and playbook["pester_load"] == 1
    assert playbook["advanced"] == 1 and playbook["stalls"] == 0
    assert playbook["days_to_next_step"] == round(10 + 2 / 24, 2)
    assert playbook["messages"] == {"email": 2, "voicemail": 1, "card": 0}

    result = runner.invoke(cli, ["replay", "-p", "default", "--until", "2027-01-01"])
    assert "employer: recorded" in result.output
    result = runner.invoke(cli, ["replay", "-p", "default", "--employer", "guess"])
    assert result.exit_code == 1 and "'recorded' or 'model'" in result.output
    result = runner.invoke(cli, ["replay", "-p", "default", "--employer", "model"])
    assert result.exit_code == 1 and "needs --model" in result.output
    result = runner.invoke(cli, ["replay", "-p", "default", "--cluster", "tcp://x:8786"])
    assert result.exit_code == 1 and "--employer model" in result.output


# -- the simulator's ground truth -----------------------------------------------------------


def test_with_a_nudge_effect_the_simulated_employer_answers_nudges() -> None:
    eager = policy_variant("eager", patience__first_nudge_without_timeline_business_days=1,
                           nudge__spacing_business_days=1, pest_line__max_nudges=6,
                           patience__first_nudge_after_timeline_min_business_days=0)

    def decisions(effect: float, policy: CadencePolicy) -> list[datetime | None]:
        truth = ResponseModel.truth(effect)
        return [world.decision_at for world, _ in
                simulate_in_memory(60, 4, policy, employer=truth)]

    # No effect: the employer decides when it would have, whatever the policy does.
    assert decisions(0.0, default_policy()) == decisions(0.0, eager)
    # A strong effect: nudging early brings decisions forward, never back.
    calm, pushed = decisions(3.0, default_policy()), decisions(3.0, eager)
    moved = [(a, b) for a, b in zip(calm, pushed, strict=True) if a != b]
    assert len(moved) >= 10
    assert all(b is not None and (a is None or b < a) for a, b in moved)
    # The same seed gives the same world.
    assert generate(7, 4, employer=ResponseModel.truth(1.0)).decision_at == generate(
        7, 4, employer=ResponseModel.truth(1.0)).decision_at


def test_closer_model_fit_refuses_too_little_data_naming_the_minimum(
        sqlite_url: str, tmp_path: Path) -> None:
    assert runner.invoke(cli, ["simulate", "--candidacies", "30", "--nudge-effect",
                               "1"]).exit_code == 0
    out = tmp_path / "model.json"
    result = runner.invoke(cli, ["model", "fit", "--out", str(out)])
    assert result.exit_code == 3
    assert "minimum is 200 candidacies" in result.output and not out.exists()
    with pytest.raises(ModelRefused):
        fit([])


def test_objectives_are_a_small_checked_grammar() -> None:
    goal = parse_objective("maximise advanced subject to nudges_per_candidacy<=2 and "
                           "pest_breaches==0")
    assert goal.maximise and goal.outcome == "advanced"
    assert [str(c) for c in goal.constraints] == ["nudges<=2", "pest_breaches==0"]
    assert str(parse_objective("minimize days_median")) == "minimise days_median"
    for bad, says in (("advanced", "start with"), ("maximise luck", "unknown outcome"),
                      ("maximise advanced subject to nudges~2", "a constraint is"),
                      ("maximise advanced subject to", "needs a constraint")):
        with pytest.raises(InvalidInput, match=says):
            parse_objective(bad)


# -- ground truth ---------------------------------------------------------------------------

PAIRS = {
    "more persistent": policy_variant("persistent", pest_line__max_nudges=6,
                                      stall__grace_business_days=10),
    "less persistent": policy_variant("brief", pest_line__max_nudges=1,
                                      patience__window_without_timeline_weeks=2),
    "other spacing": policy_variant("spaced", nudge__spacing_business_days=2),
}


def _true_outcomes(count: int, seed: int, policy: CadencePolicy,
                   truth: ResponseModel) -> tuple[float, float | None]:
    """Share advanced and the Kaplan-Meier median days to the employer's word, of B
    simulated directly (the same employer seeds)."""
    days, decided = [], []
    advanced = 0
    for world, candidacy in simulate_in_memory(count, seed, policy, employer=truth):
        outcome = candidacy.outcome or {}
        start = world.first_interview_at
        advanced += outcome.get("kind") == "advanced"
        if outcome.get("kind") in ("advanced", "rejected"):
            days.append((outcome["at"] - start).total_seconds() / 86400)
            decided.append(1)
        else:
            end = outcome.get("at") or candidacy.modified_on
            days.append((end - start).total_seconds() / 86400)
            decided.append(0)
    (median,) = _km_quantiles(np.asarray(days), np.asarray(decided, dtype=float),
                              np.ones(len(days)), (0.5,))
    return advanced / count, median


def _ground_truth(tmp_path: Path, count: int, effect: float, draws: int) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path}/a.db"
    app = Candidacies(eventsourcing_env(url), clock=FixedClock(at(1, 0)))
    truth = ResponseModel.truth(effect)
    seed = 11
    simulate(app, count, seed, policy=default_policy(), employer=truth)
    app.close()
    source = SQLiteSource(f"{tmp_path}/a.db")
    model = fit(candidacy_histories(source.batches(None), keep_decisions=True))
    policies = [default_policy(), *PAIRS.values()]
    outcomes = summarise(model_replay(source, policies, model, draws=draws, seed=3,
                                      until=FAR), replicates=300, seed=5)
    return {"model": model, "outcomes": dict(zip(["A", *PAIRS], outcomes, strict=True)),
            "truth": {name: _true_outcomes(count, seed, policy, truth)
                      for name, policy in PAIRS.items()}}


def _check_recovery(found: dict[str, Any], effect: float) -> None:
    (nudge,) = [r for r in found["model"].report["hazard"] if r["feature"] == "nudge_recent"]
    assert nudge["low"] <= effect <= nudge["high"], nudge
    for name in PAIRS:
        predicted = found["outcomes"][name]
        share, median = found["truth"][name]
        low, high = predicted.intervals["advanced"]
        assert low <= share <= high, (name, share, predicted.intervals["advanced"])
        low, high = predicted.intervals["days_median"]
        assert median is not None and low <= median <= high, (name, median, low, high)


def test_ground_truth_a_known_nudge_effect_is_recovered_and_predicts_other_policies(
        tmp_path: Path) -> None:
    found = _ground_truth(tmp_path, 500, effect=1.0, draws=4)
    _check_recovery(found, 1.0)
    # The more persistent policy is predicted to get more candidates to the next step.
    a, more = found["outcomes"]["A"], found["outcomes"]["more persistent"]
    low, _high = more.difference(a, "advanced")  # type: ignore[misc]
    assert low > 0


def test_ground_truth_with_no_nudge_effect_predicts_no_difference_in_when_they_answer(
        tmp_path: Path) -> None:
    found = _ground_truth(tmp_path, 500, effect=0.0, draws=4)
    _check_recovery(found, 0.0)
    a = found["outcomes"]["A"]
    for name in PAIRS:
        low, high = found["outcomes"][name].difference(a, "days_median")  # type: ignore[misc]
        assert low <= 0.0 <= high, name


@pytest.mark.slow
@pytest.mark.parametrize("effect", [1.0, 0.0])
def test_ground_truth_on_20000_candidacies(tmp_path: Path, effect: float) -> None:
    """The Must-show size.  3 draws: given the record, the draws of one candidacy differ
    only where a policy moves its decision, and 3 keep the parameter uncertainty in
    (the coverage study in benchmarks/replay_bench.py uses 4 at 300 candidacies)."""
    found = _ground_truth(tmp_path, 20_000, effect=effect, draws=3)
    _check_recovery(found, effect)
    a = found["outcomes"]["A"]
    if effect:
        low, _high = found["outcomes"]["more persistent"].difference(  # type: ignore[misc]
            a, "advanced")
        assert low > 0
        return
    for name in PAIRS:
        low, high = found["outcomes"][name].difference(a, "days_median")  # type: ignore[misc]
        assert low <= 0.0 <= high, name


def test_given_the_record_the_live_policy_meets_the_employer_it_recorded(
        tmp_path: Path) -> None:
    """The draws are conditioned on what the record shows of each employer (abduction):
    replayed under the policy that was live, with its own nudges, every draw decides as
    recorded (day, moment, kind) and every stall or withdrawal stays where it was, with
    the fitted model's sampled coefficients, while another policy's draws differ."""
    url = f"sqlite:///{tmp_path}/a.db"
    app = Candidacies(eventsourcing_env(url), clock=FixedClock(at(1, 0)))
    simulate(app, 300, 4, policy=default_policy(), employer=ResponseModel.truth(1.0))
    app.close()
    source = SQLiteSource(f"{tmp_path}/a.db")
    model = fit(candidacy_histories(source.batches(None), keep_decisions=True))
    recorded = []
    for history in candidacy_histories(source.batches(None)):
        start = history.facts[0].interview["interviewed_at"]
        replies = [f for f in history.facts
                   if f.name == "ReplyReceived" and f.kind in ("advanced", "rejected")]
        if replies:
            recorded.append((int(replies[-1].kind == "advanced"), 0,
                             (replies[-1].at - start).total_seconds() / 86400, 1))
        else:
            withdrawn = any(f.name == "Withdrawn" for f in history.facts)
            recorded.append((0, int(history.final_stage == "stalled" and not withdrawn),
                             None, 0))
    records = model_replay(source, [default_policy(), PAIRS["other spacing"]], model,
                           draws=3, seed=9, until=FAR)
    assert {s for s, _, _, _ in recorded} == {0, 1}  # advances and not, stalls too
    assert any(stalled for _, stalled, _, _ in recorded)
    for rows in records.rows[0]:
        got = [(a, st, days if decided else None, decided)
               for a, st, _, days, decided, *_ in rows]
        assert got == recorded
    spaced = [[(a, st, days, decided) for a, st, _, days, decided, *_ in rows]
              for rows in records.rows[1]]
    assert spaced[0] != [(a, st, d, dec) for a, st, _, d, dec, *_ in records.rows[0][0]]

# -- the same result on a Dask cluster -------------------------------------------------------


def test_a_local_dask_cluster_gives_exactly_the_local_result(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    url = f"sqlite:///{tmp_path}/a.db"
    app = Candidacies(eventsourcing_env(url), clock=FixedClock(at(1, 0)))
    simulate(app, 60, 2, employer=ResponseModel.truth(1.0))
    app.close()
    source = SQLiteSource(f"{tmp_path}/a.db")
    policies = [default_policy(), PAIRS["more persistent"]]
    truth = ResponseModel.truth(1.0)
    local = model_replay(source, policies, truth, draws=2, seed=1, until=FAR, workers=2)
    alone = model_replay(source, policies, truth, draws=2, seed=1, until=FAR)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = model_replay(source, policies, truth, draws=2, seed=1, until=FAR,
                              cluster=client)
    assert remote.rows == local.rows == alone.rows
    assert remote.candidacies == local.candidacies == 60
    assert os.path.exists(f"{tmp_path}/a.db")


def test_the_draw_s_spelled_out_hazard_is_the_model_s_features() -> None:
    """`EmployerDraw` builds the linear predictor without calling `features` (speed):
    the two must agree, for every timeline, offer and round."""
    import random
    from datetime import date, timedelta
    from zoneinfo import ZoneInfo

    from engine.response_model import (
        FEATURES,
        EmployerDraw,
        RoundContext,
        business_day,
        business_days_between,
        features,
    )

    model = ResponseModel.truth(1.0, timeline_inside=0.7, round=0.2, nudges=0.1)
    for timeline in (None, {"min_weeks": 2, "max_weeks": 3}):
        for offer in (None, 4):
            ctx = RoundContext(date(2026, 1, 5), ZoneInfo("UTC"), timeline, 2, 0.3, offer)
            draw = EmployerDraw(ctx, model, random.Random(1))
            expected = [sum(model.coefficients[n] * v for n, v in
                            zip(FEATURES, features(ctx, day, ()), strict=True))
                        for day in range(1, model.horizon_days + 1)]
            assert draw.base == pytest.approx(expected, abs=1e-12)
    for start in (date(2026, 1, 5) + timedelta(days=k) for k in range(5)):
        for n in range(1, 70):
            assert business_days_between(start, business_day(start, n)) == n


def test_model_mode_end_to_end_through_the_cli_and_on_a_local_cluster(
        sqlite_url: str, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    result = runner.invoke(cli, ["simulate", "--candidacies", "220", "--seed", "3",
                                 "--nudge-effect", "1.0"])
    assert result.exit_code == 0, result.output
    model = tmp_path / "model.json"
    result = runner.invoke(cli, ["model", "fit", "--out", str(model)])
    assert result.exit_code == 0, result.output
    assert "nudge_recent" in result.output and "Calibration by decile" in result.output
    result = runner.invoke(cli, ["model", "check", "--model", str(model), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)[0]["day"] == 5

    common = ["--employer", "model", "--model", str(model), "--draws", "2", "--until",
              "2027-06-01", "--workers", "1"]
    result = runner.invoke(cli, ["replay", "-p", "default", "--json", *common])
    data = json.loads(result.output)
    assert data["employer"] == "model" and data["draws"] == 2
    (playbook,) = data["policies"]
    assert playbook["advanced"]["better"] == "higher"
    assert playbook["advanced"]["low"] <= playbook["advanced"]["estimate"] \
        <= playbook["advanced"]["high"]
    result = runner.invoke(cli, ["replay", "-p", "default", "--csv", *common])
    assert result.output.splitlines()[1].startswith("model,playbook v1,"), result.output
    chart = tmp_path / "chart.png"
    result = runner.invoke(cli, ["replay", "-p", "default", "--chart", str(chart), *common])
    assert "employer: model" in result.output and chart.read_bytes()[:4] == b"\x89PNG"

    # (People's own nudges breach a 1-nudge pest line now and then: no policy has none.)
    tune = ["tune", "--vary", "max_nudges=1,5", "--objective",
            "maximise advanced subject to nudges_per_candidacy<=2 and pest_breaches<=0.1",
            "--json", *common]
    local = json.loads(runner.invoke(cli, tune).output)
    assert local["ranking"][0]["meets_constraints"]
    assert {r["policy"] for r in local["ranking"]} == {"live: playbook v1", "max_nudges=1",
                                                      "max_nudges=5"}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        result = runner.invoke(cli, [*tune, "--cluster", cluster.scheduler_address])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == local
    result = runner.invoke(cli, ["tune", "--vary", "max_nudges=1,5", "--objective",
                                 "maximise luck", *common])
    assert result.exit_code == 1 and "unknown outcome 'luck'" in result.output
