"""Closer's domain: lifecycle, aggregate, cadence policy, scheduler, replay.

The decision function and its calendar (`engine.decisions`, `engine.work_calendar`) and the
audit's walk (`engine.audit_walk`) are compiled with mypyc when the project is built
(setup.py; `engine.replay` is not, as it gained nothing measurable).  Their sources are
always shipped beside them and are what runs instead when:

- ``CLOSER_PURE_PYTHON`` is set (to compare, or to debug with Python's own tools);
- in a source checkout, a compiled module is older than its source (edited or checked
  out since the last build: ``pip install -e .`` rebuilds), so that a stale build never
  hides an edit.

They are one compiled group (compiled modules call each other directly), so all are
compiled or all are sources.  ``COMPILED`` says which.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path

_HERE = Path(__file__).resolve().parent
GROUP = ("work_calendar", "decisions", "audit_walk")
"""The compiled modules, in import order (decisions imports work_calendar)."""
SHARED = "compiled__mypyc"
"""Their shared library (setup.py's group name), without which none of them loads: a
build that failed there but not on the modules leaves only the sources usable."""


def compiled_paths(package: Path = _HERE) -> dict[str, Path]:
    """The compiled files present in ``package`` (the group's modules and ``SHARED``)."""
    found = {}
    for name in (*GROUP, SHARED):
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = package / f"{name}{suffix}"
            if path.exists():
                found[name] = path
                break
    return found


def stale(package: Path = _HERE) -> list[str]:
    """The compiled modules older than their source, in a source checkout (a project
    root with setup.py above ``package``); installed packages are never stale."""
    if not (package.parent / "setup.py").exists():
        return []
    return [name for name, path in compiled_paths(package).items()
            if name != SHARED
            and path.stat().st_mtime < (package / f"{name}.py").stat().st_mtime]


def _load_sources() -> None:
    for name in GROUP:
        spec = importlib.util.spec_from_file_location(f"{__name__}.{name}", _HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        setattr(sys.modules[__name__], name, module)


COMPILED = len(compiled_paths()) == len(GROUP) + 1
if COMPILED and os.environ.get("CLOSER_PURE_PYTHON"):
    COMPILED = False
    _load_sources()
elif COMPILED and (_outdated := stale()):
    warnings.warn(f"engine: the compiled {', '.join(_outdated)} is older than its source; "
                  "running the sources (rebuild with: pip install -e .)", stacklevel=2)
    COMPILED = False
    _load_sources()
elif not COMPILED and set(compiled_paths()) - {SHARED}:
    _load_sources()  # a partial build: never mix compiled and source modules of the group
