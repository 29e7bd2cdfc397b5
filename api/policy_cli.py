"""`closer policy`: show cadence policies as TOML, compare and check them, publish versions,
list them with their candidacies, and move candidacies between versions.

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

from api.cli_errors import fail
from engine.errors import CloserError

# The policies (and their calendar's holidays) and the store are imported by the commands
# that use them, so that `closer --help` does not load them (tests/test_startup.py).
if TYPE_CHECKING:
    from engine.policy import CadencePolicy

policy_app = typer.Typer(
    name="policy",
    help="Show, compare, check and publish cadence policies; move candidacies between "
         "published versions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_IDENTITY = frozenset({"name", "version", "description"})



def resolve_policy(name: str | None, version: int | None = None) -> CadencePolicy:
    """The default policy for no name; a path to a TOML file; a published version,
    ``NAME@VERSION``; or a policy published in the store (its latest version unless
    ``version`` is given)."""
    from api.wiring import build_candidacies
    from engine.policy import PolicyError, default_policy, load_policy
    from engine.policy_book import parse_ref

    if name is None or name == "default":
        return default_policy()
    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        return load_policy(path)
    if "@" in name:
        if version is not None:
            raise PolicyError(name, [(None, "give the version once: NAME@VERSION or "
                                            "--version, not both")])
        name, version = parse_ref(name)
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
        typer.Argument(help="A published version, NAME@VERSION ('playbook@2'); a published "
                            "policy's name ('playbook', the default: its latest version); "
                            "or the path of a .toml file."),
    ] = None,
    version: Annotated[int | None, typer.Option(help="a published version (default: latest)")]
    = None,
    against: Annotated[str | None, typer.Option(
        help="also list what it changes against this one (NAME@VERSION, a name or a file)")]
    = None,
) -> None:
    """Print a policy as TOML (the default playbook policy when no name is given)."""
    from engine.policy import policy_to_toml

    try:
        policy = resolve_policy(name, version)
        base = resolve_policy(against) if against is not None else None
    except CloserError as exc:
        raise fail(str(exc)) from None
    typer.echo(policy_to_toml(policy), nl=False)
    if base is not None:
        typer.echo("")
        _print_changes(base, policy, f"{base.name}@{base.version}",
                       f"{policy.name}@{policy.version}")


@policy_app.command("diff")
def diff(
    old: Annotated[str, typer.Argument(help="NAME@VERSION (or a name, or a .toml file)")],
    new: Annotated[str, typer.Argument(help="NAME@VERSION (or a name, or a .toml file)")],
) -> None:
    """What NEW changes against OLD, field by field (e.g. `closer policy diff playbook@1
    playbook@2`)."""
    try:
        before, after = resolve_policy(old), resolve_policy(new)
    except CloserError as exc:
        raise fail(str(exc)) from None
    _print_changes(before, after, old, new)


def _print_changes(before: CadencePolicy, after: CadencePolicy, left: str, right: str) -> None:
    """A table of the rule changes from ``before`` to ``after`` (identity apart)."""
    from engine.policy import diff_policies

    console = Console(highlight=False, soft_wrap=True)
    changes = [c for c in diff_policies(before, after) if c.field not in _IDENTITY]
    if not changes:
        console.print(Text(f"{right} has the same rules as {left}."))
        return
    table = Table(title=Text(f"{right} against {left}: {len(changes)} rule(s) changed"))
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column(Text(left))
    table.add_column(Text(right))
    for change in changes:
        table.add_row(Text(change.field), Text(_shown(change.old)), Text(_shown(change.new)))
    console.print(table)


@policy_app.command("list")
def list_versions(
    workspace: Annotated[str | None, typer.Option(
        help="count only this workspace's candidacies")] = None,
) -> None:
    """Every published version, and how many candidacies run under each (as the policies
    read model knows it: `closer projections run` or `closer serve` keep it current)."""
    from api.read_models import follower, pinned_counts
    from api.wiring import build_candidacies

    candidacies = build_candidacies()
    try:
        runner = follower(candidacies, ["policies"])
        counts = pinned_counts(runner.models[0].view, workspace=workspace)
        behind = runner.lags()[0].behind
        table = Table(title="Published policy versions")
        for column in ("version", "description", "candidacies"):
            table.add_column(column)
        for ref in candidacies.policies.published():
            policy = candidacies.policies.get(*ref)
            table.add_row(Text(str(ref)), Text(policy.description),
                          str(counts.get((ref.name, ref.version), 0)))
    except CloserError as exc:
        raise fail(str(exc)) from None
    finally:
        candidacies.close()
    console = Console(highlight=False, soft_wrap=True)
    console.print(table)
    if behind:
        console.print(f"(the counts are behind the event log by up to {behind} events: "
                      "run `closer projections run --once`)")


@policy_app.command("starting")
def starting_command(
    workspace: Annotated[str, typer.Option(help="the workspace")],
    version: Annotated[str | None, typer.Argument(
        help="NAME@VERSION to start its new candidacies on; without it, show the current one")]
    = None,
    by: Annotated[str, typer.Option(help="who chooses it (recorded)")] = "operator",
) -> None:
    """Show, or choose, the published version a workspace's new candidacies start on when
    their interview names none (open candidacies keep theirs: `closer policy migrate`)."""
    from api.wiring import build_candidacies
    from engine.policy_book import parse_ref

    candidacies = build_candidacies()
    try:
        if version is None:
            chosen = candidacies.policies.starting(workspace)
            default = candidacies.default_policy
            text = str(chosen) if chosen else f"{default['name']}@{default['version']} (default)"
            typer.echo(f"{workspace}: new candidacies start on {text}")
            return
        target = parse_ref(version, "version")
        changed = candidacies.policies.choose_starting(workspace, target, by,
                                                       candidacies.clock.now())
    except CloserError as exc:
        raise fail(str(exc)) from None
    finally:
        candidacies.close()
    typer.echo(f"{workspace}: new candidacies start on {target}"
               + ("" if changed else " (already so)"))


@policy_app.command("migrate")
def migrate_command(
    to: Annotated[str, typer.Option("--to", help="the published version to move to, "
                                                 "NAME@VERSION")],
    candidacy: Annotated[list[str] | None, typer.Option(
        "--candidacy", help="a candidacy's id (repeat for several)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every open candidacy of the workspace")]
    = False,
    workspace: Annotated[str | None, typer.Option(
        help="the workspace (needed with a filter or --all; with --candidacy, by default "
             "the first candidacy's)")] = None,
    stage: Annotated[str | None, typer.Option(help="filter: at this stage")] = None,
    company: Annotated[str | None, typer.Option(help="filter: exactly this company")] = None,
    recruiter: Annotated[str | None, typer.Option(
        help="filter: who recorded the interview (from the policies read model)")] = None,
    current: Annotated[str | None, typer.Option(
        "--from", help="filter: on this version now, NAME@VERSION")] = None,
    by: Annotated[str, typer.Option(help="who moves them (recorded)")] = "operator",
    reason: Annotated[str | None, typer.Option(help="why (recorded on each event)")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="list what would move; record nothing")] = False,
) -> None:
    """Move candidacies to another published version: one --candidacy (or several), a
    filter (--stage, --company, --recruiter, --from), or --all; each move is a recorded
    PolicyMigrated, and one refused does not stop the others."""
    from api.wiring import build_candidacies
    from engine.errors import InvalidInput
    from engine.migration import MigrationFilter, migrate
    from engine.policy_book import parse_ref
    from engine.values import Actor

    filtered = any(v is not None for v in (stage, company, recruiter, current))
    given = [n for n, on in (("--candidacy", bool(candidacy)), ("a filter", filtered),
                             ("--all", all_)) if on]
    if len(given) != 1:
        raise fail("give exactly one of --candidacy, a filter (--stage, --company, "
                    "--recruiter, --from) or --all" + (f" (got {' and '.join(given)})"
                                                       if given else ""))
    candidacies = build_candidacies()
    try:
        target = parse_ref(to, "--to")
        if candidacy and workspace is None:
            row = candidacies.row(candidacy[0]) if _is_uuid(candidacy[0]) else None
            if row is None:
                raise InvalidInput("--candidacy", f"no candidacy {candidacy[0]}")
            workspace = row.workspace
        if workspace is None:
            raise InvalidInput("--workspace", "say which workspace's candidacies to move")
        among = None
        if recruiter is not None:
            from api.read_models import follower, pinned_ids

            view = follower(candidacies, ["policies"]).models[0].view
            among = frozenset(pinned_ids(view, workspace=workspace, recruiter=recruiter))
        chosen = MigrationFilter(
            stage=stage, company=company, among=among,
            current=parse_ref(current, "--from") if current else None,
            ids=frozenset(candidacy) if candidacy else None)
        report = migrate(candidacies, Actor(user=by, workspace=workspace), target, chosen,
                         reason=reason, dry_run=dry_run)
    except CloserError as exc:
        raise fail(str(exc)) from None
    finally:
        candidacies.close()
    console = Console(highlight=False, soft_wrap=True)
    verb = "would move" if dry_run else "moved"
    for candidacy_id in report.moved:
        console.print(Text(f"{verb}  {candidacy_id}"))
    for failure in report.failed:
        console.print(Text(f"failed  {failure.candidacy_id}: {failure.detail}"))
    console.print(Text(
        f"{target}: {len(report.moved)} {verb}, {len(report.unchanged)} already on it, "
        f"{len(report.failed)} failed" + (" (dry run: nothing recorded)" if dry_run else "")))
    if report.failed:
        raise typer.Exit(code=1)


def _is_uuid(text: str) -> bool:
    from uuid import UUID

    try:
        UUID(text)
    except ValueError:
        return False
    return True


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
        raise fail(str(exc)) from None
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
        raise fail(str(exc)) from None
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
