"""How every `closer` command reports a user's mistake: one line, ``error: ...``, on
standard error, exit code 1 unless said (never a traceback)."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.text import Text

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(problem: object, code: int = 1) -> typer.Exit:
    """Print ``error: <problem>`` and return the exit to raise.  The problem is printed as
    plain text: brackets in it (a path, a list) are never read as console markup."""
    _stderr.print(Text("error: ", style="red"), Text(str(problem)), sep="")
    return typer.Exit(code)


def exit_if_chain_broken(candidacies: Any, candidacy_id: str) -> None:
    """Exit 1 naming the first break when the candidacy's stored chain is broken: a
    command line's command is not recorded on top of altered events (docs/audit.md,
    "Commands on a broken chain"), as the API's command routes refuse it."""
    from api.audit_service import chain_warning

    broken = chain_warning(candidacies, candidacy_id)
    if broken is not None:
        raise fail(f"not applied: this candidacy's stored history is not what was recorded "
                   f"({broken.line()}); an admin runs `closer audit verify` and restores it")
