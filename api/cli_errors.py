"""How every `closer` command reports a user's mistake: one line, ``error: ...``, on
standard error, exit code 1 unless said (never a traceback)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.text import Text

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(problem: object, code: int = 1) -> typer.Exit:
    """Print ``error: <problem>`` and return the exit to raise.  The problem is printed as
    plain text: brackets in it (a path, a list) are never read as console markup."""
    _stderr.print(Text("error: ", style="red"), Text(str(problem)), sep="")
    return typer.Exit(code)
