"""`closer --help`, every sub-command's `--help` and a cron `closer tick` import only what
they need (issue 15: the heavy libraries are imported inside the commands that run them).

These tests look at which modules a fresh interpreter imported, never at timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import typer

from api.cli import app

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("eventsourcing", "psycopg", "psycopg_pool", "fastapi", "starlette", "uvicorn",
         "holidays", "matplotlib", "jinja2", "icalendar", "engine.application", "engine.store")
"""What no `--help` may import: the store's libraries, the web stack, the calendar's
holidays, charts, templates, invites, and the engine's application."""

SERVING = ("fastapi", "starlette", "uvicorn", "jinja2", "matplotlib")
"""What a cron `closer tick` has no use for."""


def _heavy(modules: list[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def _python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    paths = []
    for name, command in group.commands.items():
        paths.append([*prefix, name])
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


def test_closer_help_imports_no_heavy_module() -> None:
    done = _python("-X", "importtime", "-m", "api.cli", "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout and "tick" in done.stdout
    imported = [line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:") and "|" in line]
    assert "typer" in imported  # the trace is read (a changed format would pass silently)
    assert _heavy(imported) == []


# Each command's --help in one interpreter, in turn: which heavy modules each one added.
_EVERY_HELP = """
import json, sys
before = set(sys.modules)
from api.cli import app
found = {"(import api.cli)": [0, sorted(set(sys.modules) - before)]}
for path in json.loads(sys.argv[1]):
    before = set(sys.modules)
    code = app([*path, "--help"], prog_name="closer", standalone_mode=False)
    found[" ".join(path)] = [code, sorted(set(sys.modules) - before)]
with open(sys.argv[2], "w") as out:  # stdout holds the help texts
    json.dump(found, out)
"""


def test_every_sub_command_help_imports_no_heavy_module(tmp_path: Path) -> None:
    paths = _command_paths(typer.main.get_command(app))
    assert {"tick", "serve", "replay", "dispatch", "policy", "token"} <= {p[0] for p in paths}
    result = tmp_path / "found.json"
    done = _python("-c", _EVERY_HELP, json.dumps(paths), str(result),
                   env={"CLOSER_DATABASE_URL": f"sqlite:///{tmp_path}/closer.db"})
    assert done.returncode == 0, done.stderr
    found = json.loads(result.read_text())
    assert set(found) == {"(import api.cli)", *(" ".join(p) for p in paths)}
    assert {name: code for name, (code, _) in found.items() if code != 0} == {}
    assert {name: _heavy(added) for name, (_, added) in found.items() if _heavy(added)} == {}


_TICK = """
import json, sys
from api.cli import app
code = app(["tick"], prog_name="closer", standalone_mode=False)
json.dump([code, sorted(sys.modules)], sys.stdout)
"""


def test_tick_imports_the_application_but_not_the_web_stack(tmp_path: Path) -> None:
    done = _python("-c", _TICK, env={"CLOSER_DATABASE_URL": f"sqlite:///{tmp_path}/closer.db",
                                     "CLOSER_LOG_LEVEL": "error"})
    assert done.returncode == 0, done.stderr
    code, modules = json.loads(done.stdout.splitlines()[-1])
    assert code in (None, 0)
    assert "engine.application" in modules and "eventsourcing" in modules
    assert _heavy(modules, SERVING) == []
