"""`closer policy`: show cadence policies as TOML and check policy files.

Mounted by the main CLI as ``closer policy``; usable on its own as ``policy_app``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.errors import CloserError

# The policies (and their calendar's holidays) and the store are imported by the commands
# that use them, so that `closer --help` does not load them (tests/test_startup.py).
if TYPE_CHECKING:
    from engine.policy import CadencePolicy

policy_app = typer.Typer(
    name="policy",
    help="Show cadence policies and check policy files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_IDENTITY = frozenset({"name", "version", "description"})


def _fail(message: str) -> typer.Exit:
    """Print one clear line on stderr and return the exit to raise (code 1)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def resolve_policy(name: str | None, version: int | None = None) -> CadencePolicy:
    """The default policy for no name; a path to a TOML file; or a policy published
    in the store (its latest version unless ``version`` is given)."""
    from api.wiring import build_candidacies
    from engine.policy import PolicyError, default_policy, load_policy

    if name is None or name == "default":
        return default_policy()
    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        return load_policy(path)
    book = build_candidacies().policies
    if version is not None:
        return book.get(name, version)
    latest = book.latest(name)
    if latest is None:
        raise PolicyError(name, [(None, f"no policy named {name!r} is published; give the "
                                        "path of a .toml file or publish one first")])
    return latest


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
        typer.Argument(help="A published policy's name ('playbook', the default) or the "
                            "path of a .toml file."),
    ] = None,
    version: Annotated[int | None, typer.Option(help="a published version (default: latest)")]
    = None,
) -> None:
    """Print a policy as TOML (the default playbook policy when no name is given)."""
    from engine.policy import policy_to_toml

    try:
        policy = resolve_policy(name, version)
    except CloserError as exc:
        raise _fail(str(exc)) from None
    typer.echo(policy_to_toml(policy), nl=False)


@policy_app.command("publish")
def publish(
    file: Annotated[Path, typer.Argument(help="The TOML policy file to publish.")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="validate and say whether it would be published; write nothing")]
    = False,
) -> None:
    """Publish a policy version so candidacies can start on it or migrate to it."""
    from api.wiring import build_candidacies
    from engine.policy import load_policy

    try:
        policy = load_policy(file)
        book = build_candidacies().policies
        new = _would_publish(book, policy) if dry_run else book.publish(policy)
    except CloserError as exc:
        raise _fail(str(exc)) from None
    state = "published" if new else "already published (identical)"
    if dry_run:
        state = ("would be published" if new else state) + " (dry run: nothing written)"
    typer.echo(f"{policy.name} version {policy.version}: {state}")


def _would_publish(book: Any, policy: CadencePolicy) -> bool:
    """What `PolicyBook.publish` would answer (and refuse), without saving anything."""
    from engine.policy import PolicyError, policy_to_toml

    try:
        existing = book.get(policy.name, policy.version)
    except CloserError:
        return True
    if policy_to_toml(existing) != policy_to_toml(policy):
        reason = (f"version {policy.version} is already published with other rules: "
                  "publish a new version")
        raise PolicyError(policy.name, [(None, reason)])
    return False


@policy_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The TOML policy file to validate.")],
) -> None:
    """Validate a policy file and print what it would change against the default policy."""
    from engine.policy import PolicyError, default_policy, diff_policies, load_policy

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
