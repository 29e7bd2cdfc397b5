"""`closer policy`: show cadence policies as TOML and check policy files.

Mounted by the main CLI as ``closer policy``; usable on its own as ``policy_app``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.policy import (
    CadencePolicy,
    PolicyError,
    default_policy,
    diff_policies,
    load_policy,
    policy_to_toml,
)

policy_app = typer.Typer(
    name="policy",
    help="Show cadence policies and check policy files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Names that mean the shipped policy; named policies beyond it live in files for now.
_DEFAULT_NAMES = frozenset({"playbook", "default"})
_IDENTITY = frozenset({"name", "version", "description"})


def _fail(message: str) -> typer.Exit:
    """Print one clear line on stderr and return the exit to raise (code 1)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _resolve(name: str | None) -> CadencePolicy:
    """The default policy for no name or 'playbook'; otherwise a path to a TOML file."""
    if name is None or name in _DEFAULT_NAMES:
        return default_policy()
    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        return load_policy(path)
    raise PolicyError(
        name,
        [(None, f"no policy named {name!r}; known: {', '.join(sorted(_DEFAULT_NAMES))}, "
                "or give the path of a .toml file")],
    )


def _shown(value: Any) -> str:
    """A value as it would be written in a policy file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


@policy_app.command("show")
def show(
    name: Annotated[
        str | None,
        typer.Argument(help="Policy name ('playbook', the default) or path to a .toml file."),
    ] = None,
) -> None:
    """Print a policy as TOML (the default playbook policy when no name is given)."""
    try:
        policy = _resolve(name)
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    typer.echo(policy_to_toml(policy), nl=False)


@policy_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The TOML policy file to validate.")],
) -> None:
    """Validate a policy file and print what it would change against the default policy."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"[green]valid[/green]: {escape(str(file))} is policy '{policy.name}' "
        f"version {policy.version}"
    )
    # Name, version and description identify a policy; only rule changes alter behaviour.
    changes = [c for c in diff_policies(default_policy(), policy) if c.field not in _IDENTITY]
    if not changes:
        console.print("Its rules are the same as the default policy's.")
        return
    base = default_policy()
    table = Table(title=f"Changes against the default policy '{base.name}' v{base.version}")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("default")
    table.add_column(Text(str(file)))
    # Text cells, because rich would read "[voicemail, email]" as markup.
    for change in changes:
        table.add_row(Text(change.field), Text(_shown(change.old)), Text(_shown(change.new)))
    console.print(table)
