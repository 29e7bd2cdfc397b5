"""Histories as JSON Lines: `closer export` and `closer import`.

One stored event a line, in ``(originator_id, originator_version)`` order:

    {"originator_id":"<uuid>","originator_version":3,"topic":"engine.candidacy:...","state":{...}}

``state`` is the stored payload byte for byte (embedded verbatim, not re-encoded), so an
export imported elsewhere and exported again is identical, and `engine.replay` reads the
file exactly as it reads the store.  A payload that is not JSON (a compressed or
encrypted store) travels as ``"state_b64"`` instead.  An export holds the candidacies'
events, and the published policies' with ``with_policies``; never another aggregate's
(another layer's credentials must not work in the copy, nor its messages be delivered
again).  Snapshots and the current rows are derived, and an import rebuilds
the rows.

An import moves the given followers (the outbox) past the events it inserts, in the same
transaction: what the history says was decided or delivered before the export is history
in the copy, never work for its outbox.  So it refuses a store whose followers have not
yet followed every event already there (their work would be skipped with the import's).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent

from engine.errors import InvalidInput

_STATE_KEY = b',"state":'
_HEADER = b'{"originator_id":'
_CANDIDACY_TOPIC = "engine.candidacy:Candidacy."
_POLICY_TOPIC = "engine.policy_book:PublishedPolicy."


def exported_topics(*, with_policies: bool = False) -> tuple[str, ...]:
    """The topic prefixes an export keeps: candidacies, and published policies if asked."""
    return (_CANDIDACY_TOPIC, _POLICY_TOPIC) if with_policies else (_CANDIDACY_TOPIC,)


def export_lines(batches: Iterable[list[tuple[Any, int, str, bytes]]], *,
                 with_policies: bool = False) -> Iterator[bytes]:
    """Each stored candidacy row (and published policy row, ``with_policies``) as one line
    (with its newline); every other aggregate's rows are left out."""
    keep = exported_topics(with_policies=with_policies)
    for rows in batches:
        for originator_id, version, topic, state in rows:
            if not topic.startswith(keep):
                continue
            uid = str(originator_id if isinstance(originator_id, UUID)
                      else UUID(str(originator_id)))
            state = bytes(state)
            try:
                orjson.loads(state)
                payload: dict[str, Any] = {"state": orjson.Fragment(state)}
            except orjson.JSONDecodeError:
                payload = {"state_b64": base64.b64encode(state).decode()}
            yield orjson.dumps({"originator_id": uid, "originator_version": version,
                                "topic": topic, **payload}) + b"\n"


def export(batches: Iterable[list[tuple[Any, int, str, bytes]]], out: IO[bytes], *,
           with_policies: bool = False) -> int:
    """Write the exported rows (see `export_lines`) to ``out``; returns how many."""
    count = 0
    for line in export_lines(batches, with_policies=with_policies):
        out.write(line)
        count += 1
    return count


def parse_line(line: bytes, number: int | None = None) -> tuple[str, int, str, bytes]:
    """``(originator_id, version, topic, state)`` of one line (``number``, from 1, names
    it in the error), the state as stored."""
    line = line.rstrip(b"\r\n")
    cut = line.find(_STATE_KEY)
    if line.startswith(_HEADER) and cut > 0 and line.endswith(b"}"):
        # The layout `export` writes: the state is the rest of the line, verbatim.
        head = orjson.loads(line[:cut] + b"}")
        return head["originator_id"], head["originator_version"], head["topic"], \
            line[cut + len(_STATE_KEY):-1]
    try:
        data = orjson.loads(line)
        if "state_b64" in data:
            state = base64.b64decode(data["state_b64"])
        else:
            state = orjson.dumps(data["state"])
        return data["originator_id"], data["originator_version"], data["topic"], state
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        where = f"line {number}: " if number is not None else ""
        raise InvalidInput("file", f"{where}not an exported event line ({error}): "
                                   f"{line[:80].decode(errors='replace')}") from None


@dataclass
class ImportReport:
    """What `import_file` wrote."""

    events: int = 0
    candidacies: int = 0
    other_aggregates: int = 0
    dry_run: bool = False


def import_file(app: Any, path: str | Path, *, batch: int = 200,
                followers: Sequence[str] = (), dry_run: bool = False) -> ImportReport:
    """Insert an exported file's events into ``app``'s store, with each candidacy's
    current row rebuilt from its events (other aggregates first: published policies are
    needed to compute the rows).  Refuses events already in the store, and a store whose
    ``followers`` (tracking names, e.g. the outbox's) lag behind its notification log;
    moves those followers past the imported events.  With ``dry_run`` every check runs
    and the report counts what would be imported, but nothing is written."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput("file", f"{path}: no such file")
    _check_followers(app, followers)
    report = ImportReport(dry_run=dry_run)
    for candidacies in (False, True):
        pending: list[list[StoredEvent]] = []
        for group in _groups(path):
            if group[0].topic.startswith(_CANDIDACY_TOPIC) is not candidacies:
                continue
            pending.append(group)
            if len(pending) >= batch:
                _insert(app, pending, candidacies, report, followers)
                pending = []
        if pending:
            _insert(app, pending, candidacies, report, followers)
    return report


def _check_followers(app: Any, followers: Sequence[str]) -> None:
    top = app.recorder.max_notification_id() or 0
    for name in followers:
        position = app.recorder.max_tracking_id(name) or 0
        if position < top:
            raise InvalidInput("file", f"the store's {name} has not yet followed its last "
                                       f"{top - position} notifications: let it catch up "
                                       "(closer dispatch --once) before importing, or "
                                       "import into an empty store")


def _groups(path: Path) -> Iterator[list[StoredEvent]]:
    """The file's events, one list per aggregate (the file is in originator order)."""
    current: str | None = None
    group: list[StoredEvent] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            originator_id, version, topic, state = parse_line(line, number)
            if originator_id != current:
                if group:
                    yield group
                current, group = originator_id, []
            if version != len(group) + 1:
                raise InvalidInput("file", f"line {number}: version {version} of {originator_id} "
                                           f"does not follow {len(group)} (not in export order)")
            group.append(StoredEvent(originator_id=UUID(originator_id),
                                     originator_version=version, topic=topic, state=state))
    if group:
        yield group


_ALREADY_THERE = "some of these events are already in the store (import into an empty store)"


def _insert(app: Any, groups: list[list[StoredEvent]], candidacies: bool,
            report: ImportReport, followers: Sequence[str]) -> None:
    from eventsourcing.persistence import IntegrityError

    rows = []
    if candidacies:
        for group in groups:
            aggregate = None
            for stored in group:
                aggregate = app.mapper.to_domain_event(stored).mutate(aggregate)
            try:
                rows.append(app.current_row(aggregate))
            except InvalidInput as error:
                raise InvalidInput("file", f"candidacy {group[0].originator_id}: {error.reason} "
                                           "here (export with --with-policies, or publish "
                                           "it first)") from None
    events = [stored for group in groups for stored in group]
    if report.dry_run:
        if any(app.recorder.select_events(group[0].originator_id, limit=1) for group in groups):
            raise InvalidInput("file", _ALREADY_THERE)
    else:
        try:
            app.recorder.insert_events(events, rows=rows, followed_past=tuple(followers))
        except IntegrityError:
            raise InvalidInput("file", _ALREADY_THERE) from None
    report.events += len(events)
    if candidacies:
        report.candidacies += len(groups)
    else:
        report.other_aggregates += len(groups)
