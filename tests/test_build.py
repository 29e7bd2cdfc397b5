"""The compiled modules (setup.py, mypyc) and their sources decide and replay alike; a stale
build is never used; CI tests the compiled modules, as they ship."""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import engine

ROOT = Path(__file__).resolve().parents[1]

# Simulated candidacies run through the engine (the scheduler's decisions come from
# `plan`, and so from the calendar), under the playbook and a brisker variant, in several
# countries and zones: every event each candidacy ends with; and replay's metrics of a
# simulated store under both (two workers, so results cross processes), as JSON.
_HISTORIES = """
import json, sys
import engine
from engine.policy import default_policy, policy_from_dict
from engine.simulation import simulate_in_memory

base = default_policy()
data = base.model_dump(mode="json")
data["name"], data["nudge"]["spacing_business_days"] = "brisk", 2
brisk = policy_from_dict(data)
out = {"compiled": engine.COMPILED, "histories": []}
for policy in (base, brisk):
    for _world, candidacy in simulate_in_memory(120, 7, policy):
        out["histories"].append([
            [type(e).__name__, e.timestamp.isoformat(), e.stage,
             (getattr(e, "decided_by", None) or {}).get("key")]
            for e in candidacy.collect_events()])

# Replay of a simulated store under both policies, in two worker processes.
import tempfile
from engine.application import Candidacies
from engine.replay import replay, source_for
from engine.simulation import simulate
from engine.store import eventsourcing_env

with tempfile.TemporaryDirectory() as folder:
    url = f"sqlite:///{folder}/store.db"
    app = Candidacies(eventsourcing_env(url))
    simulate(app, 150, 11)
    table = app.recorder.events_table_name
    app.close()
    result = replay(source_for(url, table), [base, brisk], workers=2)
    out["replay"] = [m.as_dict() for m in result.metrics]
    out["replayed"] = result.replayed
json.dump(out, sys.stdout)
"""


def _histories(pure: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CLOSER_PURE_PYTHON"}
    if pure:
        env["CLOSER_PURE_PYTHON"] = "1"
    done = subprocess.run([sys.executable, "-c", _HISTORIES], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True, timeout=300)
    return json.loads(done.stdout)


@pytest.mark.skipif(not engine.COMPILED, reason="the decision function is not compiled here "
                                                "(pip install -e . builds it)")
def test_compiled_and_source_modules_decide_alike() -> None:
    compiled, source = _histories(pure=False), _histories(pure=True)
    assert compiled["compiled"] is True
    assert source["compiled"] is False
    assert len(compiled["histories"]) == 240
    assert sum(len(h) for h in compiled["histories"]) > 1000
    assert compiled["histories"] == source["histories"]
    assert compiled["replayed"] == 150
    assert compiled["replay"][0]["nudges"] > 0
    assert compiled["replay"] == source["replay"]


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI builds the modules in place")
def test_ci_tests_the_compiled_modules() -> None:
    assert engine.COMPILED, "CI must run the suite on the compiled decision function"
    for name in engine.GROUP:
        assert importlib.import_module(f"engine.{name}").__file__.endswith(
            tuple(EXTENSION_SUFFIXES))


def test_setup_py_compiles_the_group() -> None:
    """setup.py compiles the modules `engine.GROUP` loads, and replay.py is not among them
    (its compile cost more install time than it saved: docs/performance.md)."""
    found = re.search(r"^COMPILED = (\[.*\])$", (ROOT / "setup.py").read_text(),
                      re.MULTILINE)
    assert found is not None
    assert ast.literal_eval(found[1]) == [f"engine/{name}.py" for name in engine.GROUP]
    assert "replay" not in engine.GROUP


def _package(tmp_path: Path, *, checkout: bool = True) -> Path:
    package = tmp_path / "engine"
    package.mkdir()
    if checkout:
        (tmp_path / "setup.py").write_text("")
    for name in engine.GROUP:
        (package / f"{name}.py").write_text("")
        (package / f"{name}{EXTENSION_SUFFIXES[0]}").write_text("")
    (package / f"{engine.SHARED}{EXTENSION_SUFFIXES[0]}").write_text("")
    return package


def _age(path: Path, seconds: float) -> None:
    now = path.stat().st_mtime
    os.utime(path, (now - seconds, now - seconds))


def test_a_build_older_than_its_source_is_stale_in_a_checkout(tmp_path: Path) -> None:
    package = _package(tmp_path)
    assert sorted(engine.compiled_paths(package)) == sorted((*engine.GROUP, engine.SHARED))
    for name in engine.GROUP:
        _age(package / f"{name}.py", 60)  # built after the checkout
    assert engine.stale(package) == []
    _age(package / f"work_calendar{EXTENSION_SUFFIXES[0]}", 120)  # work_calendar.py edited since
    assert engine.stale(package) == ["work_calendar"]


def test_an_installed_package_is_never_stale(tmp_path: Path) -> None:
    # Installers write files in any order: only a source checkout compares their times.
    package = _package(tmp_path, checkout=False)
    _age(package / f"decisions{EXTENSION_SUFFIXES[0]}", 120)
    assert engine.stale(package) == []


def test_sources_run_when_asked_or_stale() -> None:
    env = dict(os.environ, CLOSER_PURE_PYTHON="1")
    script = ("import engine, engine.decisions as c; "
              "print(engine.COMPILED, c.__file__[-3:] == '.py')")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    assert done.stdout.split() == ["False", "True"]


def test_a_build_without_its_shared_library_runs_the_sources(tmp_path: Path) -> None:
    """A compile that failed on the group's shared library (the extensions are optional)
    leaves module stubs that cannot load: the sources run."""
    project = tmp_path / "project"
    copy = project / "engine"
    shutil.copytree(ROOT / "engine", copy,
                    ignore=shutil.ignore_patterns("__pycache__", f"{engine.SHARED}*"))
    (project / "setup.py").write_text("")
    script = ("import engine, engine.decisions as c, engine.work_calendar as k; "
              "print(engine.COMPILED, c.__file__[-3:] == '.py', k.__file__[-3:] == '.py')")
    done = subprocess.run([sys.executable, "-c", script], cwd=project, check=True,
                          env={k: v for k, v in os.environ.items() if k != "CLOSER_PURE_PYTHON"},
                          capture_output=True, text=True)
    assert done.stdout.split() == ["False", "True", "True"]
