"""`closer simulate`, `replay`, `tune`, `export` and `import` through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from api import replay_cli
from api.cli import app
from api.replay_cli import parse_vary, rank, variants
from api.settings import get_settings
from engine.policy import default_policy
from engine.replay import Metrics

runner = CliRunner()
UNTIL = ["--until", "2027-01-01"]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A SQLite store with 40 simulated candidacies, configured for the CLI."""
    monkeypatch.setenv("CLOSER_DATABASE_URL", f"sqlite:///{tmp_path}/closer.db")
    monkeypatch.setenv("CLOSER_LOG_LEVEL", "error")
    get_settings.cache_clear()
    result = runner.invoke(app, ["simulate", "--candidacies", "40", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "40 candidacies" in result.output
    (tmp_path / "short.toml").write_text('name = "short"\nversion = 1\n'
                                         "[pest_line]\nmax_nudges = 1\n")
    yield tmp_path
    get_settings.cache_clear()


def test_replay_compares_policies_as_json_csv_table_and_chart(store: Path) -> None:
    short = str(store / "short.toml")
    result = runner.invoke(app, ["replay", "-p", "default", "-p", short, "--json", *UNTIL])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [p["policy"] for p in data["policies"]] == ["playbook v1", "short v1"]
    assert data["replayed"] == 40 and data["events"] > 300
    playbook, one = data["policies"]
    assert one["nudges"] <= playbook["nudges"] and playbook["premature_stalls"] == 0

    result = runner.invoke(app, ["replay", "-p", short, "--csv", *UNTIL])
    header, row = result.output.strip().splitlines()
    assert header.startswith("employer,policy,candidacies,")
    assert row.startswith("recorded,short v1,40,")

    chart = store / "compare.png"
    result = runner.invoke(app, ["replay", "-p", "default", "-p", short, "--chart", str(chart),
                                 "--where", "stage=stalled", *UNTIL])
    assert result.exit_code == 0, result.output
    assert "pester load" in result.output and "premature stalls" in result.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tune_ranks_every_combination_by_the_objective(store: Path) -> None:
    result = runner.invoke(app, ["tune", "--vary", "max_nudges=1..3", "--vary",
                                 "first_nudge=3,7", "--objective",
                                 "premature_stalls,pester_load", "--json", *UNTIL])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    ranking = data["ranking"]
    assert data["employer"] == "recorded"
    assert len(ranking) == 6
    keys = [(r["premature_stalls"], r["pester_load"]) for r in ranking]
    assert keys == sorted(keys)
    assert {r["policy"] for r in ranking} >= {"max_nudges=1 first_nudge=3",
                                              "max_nudges=3 first_nudge=7"}
    table = runner.invoke(app, ["tune", "--vary", "max_nudges=1..2", *UNTIL])
    assert table.exit_code == 0 and "ranked by premature_stalls, pester_load" in table.output
    assert "employer: recorded" in table.output


def test_export_import_and_replay_from_the_file(store: Path, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    out = store / "all.jsonl"
    assert runner.invoke(app, ["export", "--out", str(out)]).exit_code == 0
    from_store = runner.invoke(app, ["replay", "-p", "default", "--json", *UNTIL])
    from_file = runner.invoke(app, ["replay", "-p", "default", "--json", "--source", str(out),
                                    *UNTIL])
    assert json.loads(from_file.output)["policies"] == json.loads(from_store.output)["policies"]

    monkeypatch.setenv("CLOSER_DATABASE_URL", f"sqlite:///{store}/copy.db")
    get_settings.cache_clear()
    result = runner.invoke(app, ["import", str(out)])
    assert result.exit_code == 0, result.output
    assert "40 candidacies" in result.output
    again = store / "again.jsonl"
    assert runner.invoke(app, ["export", "--out", str(again)]).exit_code == 0
    assert again.read_bytes() == out.read_bytes()


def test_mistakes_are_one_line_errors(store: Path) -> None:
    for args in (["replay", "-p", "default", "--where", "colour=blue"],
                 ["replay", "-p", "missing.toml"],
                 ["replay", "-p", "default", "--source", "nowhere.jsonl"],
                 ["tune", "--vary", "max_nudges"],
                 ["tune", "--vary", "max_nudges=1..2", "--objective", "happiness"],
                 ["simulate", "--candidacies", "1", "--country", "XX"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("error:"), (args, result.output)
        assert "Traceback" not in result.output


def test_simulate_calibration_prints_the_target_the_record_and_what_the_stalls_cut_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSER_DATABASE_URL", f"sqlite:///{tmp_path}/calibration.db")
    monkeypatch.setenv("CLOSER_LOG_LEVEL", "error")
    # Wide enough for the table's headers on one line; the module's console was made at
    # its import, whatever COLUMNS says now.
    monkeypatch.setattr(replay_cli, "console", Console(highlight=False, width=160))
    get_settings.cache_clear()
    result = runner.invoke(app, ["simulate", "--candidacies", "120", "--seed", "2026",
                                 "--country", "FR", "--calibration"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    text = " ".join(result.output.split())
    header = next(line for line in lines if "published" in line)
    assert "employers (n)" in header and "recorded (n)" in header
    assert "cut off by stalls (n)" in header
    (row,) = [line for line in lines if line.startswith("│ FR")]
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[1] == "38.9"  # Glassdoor's France
    cut_off = int(cells[4].split("(")[1].rstrip(")"))
    # The stalls' count is the one the summary line gives, and the shortfall is explained.
    assert cut_off > 0 and f"{cut_off} employer decisions came after the live policy" in text
    assert "the recorded mean falls short" in text


def test_vary_names_map_to_policy_fields() -> None:
    assert parse_vary("first_nudge=2..4") == (
        "patience.first_nudge_without_timeline_business_days", [2, 3, 4])
    assert parse_vary("nudge.spacing_business_days=3,5") == ("nudge.spacing_business_days",
                                                             [3, 5])
    grid = variants(default_policy(), [parse_vary("max_nudges=1..2"),
                                       parse_vary("thank_you_in_window=true,false")])
    assert [label for label, _ in grid] == [
        "max_nudges=1 thank_you_in_window=True", "max_nudges=1 thank_you_in_window=False",
        "max_nudges=2 thank_you_in_window=True", "max_nudges=2 thank_you_in_window=False"]
    assert grid[2][1].pest_line.max_nudges == 2 and grid[2][1].thank_you.within_send_window
    with pytest.raises(ValueError, match="max_nudges"):
        variants(default_policy(), [parse_vary("max_nudges=11")])


def test_rank_is_lexicographic_and_minus_maximises() -> None:
    a, b, c = Metrics("a"), Metrics("b"), Metrics("c")
    a.premature_stalls, b.premature_stalls, c.premature_stalls = 1, 0, 0
    a.pester_load, b.pester_load, c.pester_load = 0, 5, 3
    a.advanced, b.advanced, c.advanced = 9, 1, 2
    assert [m.label for m in rank([a, b, c], ["premature_stalls", "pester_load"])] == [
        "c", "b", "a"]
    assert [m.label for m in rank([a, b, c], ["-advanced"])] == ["a", "c", "b"]
