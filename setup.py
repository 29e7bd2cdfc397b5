"""Build Closer: the decision function, its calendar maths and the audit's walk compiled
with mypyc.

`plan` (engine/decisions.py) and the calendar under it (engine/work_calendar.py) are replay's
hottest code; compiled, replay spends about a fifth less CPU per event (docs/performance.md,
"Replay").  `audit verify`'s walk (engine/audit_walk.py) verifies 1.26x the events a
second compiled (docs/performance.md, "Audit (issue 17)").  engine/replay.py is not
compiled: compiling it too cost 45-70% more build CPU for no measurable gain
(docs/performance.md, "Install and start-up").  The sources stay in the package and stay
importable: a failed compile (no C compiler) installs them alone,
and `engine/__init__.py` loads them instead of compiled modules older than their
sources, or when ``CLOSER_PURE_PYTHON`` is set.
"""

import os

from setuptools import setup

COMPILED = ["engine/work_calendar.py", "engine/decisions.py", "engine/audit_walk.py"]


def ext_modules() -> list:
    if os.environ.get("CLOSER_PURE_PYTHON"):
        return []
    from mypyc.build import mypycify

    # The build environment holds only the build requirements: the libraries these
    # modules import are typed Any there, and the modules they import are not checked.
    # Their shared library goes inside the package (engine/compiled__mypyc...), where
    # an editable install finds it too.
    # pyproject's [tool.mypy] is the type check's (its pydantic plugin is not installed
    # here): the build reads no configuration but these flags.
    modules = mypycify(["--config-file", os.devnull, "--ignore-missing-imports",
                        "--follow-imports=silent", *COMPILED],
                       opt_level="3", group_name="engine.compiled")
    for module in modules:
        module.optional = True  # a failed compile leaves the pure-Python modules
    return modules


setup(ext_modules=ext_modules())
