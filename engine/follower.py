"""Read models that follow the application's notification log, on SQLite and PostgreSQL.

A `ReadModel` is an eventsourcing `Projection` whose view is one of eventsourcing's own
tracking recorders (`SQLiteTrackingRecorder`, `PostgresTrackingRecorder`), extended here
with the read model's tables (`ReadModelRecorder`): each write runs the model's handlers
for a batch of events *and* records its `Tracking` position in one transaction, with the
library's own tracking statement (which refuses a position that does not move forward, so
two followers never both apply a batch).  A crash therefore loses or doubles nothing: the
rows and the position commit together, and the next run resumes from the position.

`Follower` is the catch-up loop over the notification log that drives them: the SQLite
recorder has no ``subscribe()`` (eventsourcing's `ProjectionRunner` needs one), and a
batch per transaction is what makes a rebuild of a million events take minutes rather
than hours, on both stores alike.  The engine knows no read model's tables: those belong
to whoever reads them (the dashboard's are in ``api/read_models.py``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL, Identifier

from engine.errors import CorruptHistory
from engine.tables import Tx

log = structlog.get_logger("closer.read_models")

CANDIDACY_TOPIC = "engine.candidacy:Candidacy."
"""Topics of the candidacy events (the log also holds outbox messages and policies)."""

TRACKING_TABLE = "closer_read_model_tracking"
"""PostgreSQL: the read models' tracking table (SQLite: the library's one ``tracking``)."""

_LOCK_KEY = 0x436C6F736572 + 1  # an advisory lock while creating the read models' tables

SCHEMA_TABLE = "closer_read_model_schemas"
"""Each read model's schema fingerprint (`schema_fingerprint`), as its tables were made."""


class ReadModelRecorder:
    """What `ReadModel` needs of its view, on top of eventsourcing's `TrackingRecorder`
    (`max_tracking_id`, `wait`): writes with the position, reads, and a reset."""

    def write(self, tracking: Tracking, work: Callable[[Tx], None],
              expected: int | None = None) -> None:
        """Run ``work`` and record ``tracking`` in one transaction; with ``expected``,
        only if the stored position is still that (0: none), else `StalePosition`."""
        raise NotImplementedError

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query (portable SQL), outside any write."""
        raise NotImplementedError

    def reset(self, tables: Sequence[str], tracking_name: str) -> None:
        """Empty ``tables`` and forget ``tracking_name``'s position, in one transaction."""
        raise NotImplementedError


class StalePosition(IntegrityError):
    """Another follower (or a rebuild's reset) moved the position since it was read:
    the batch is rolled back, nothing of it written."""


def _check_position(tracking: Tracking, expected: int, stored: int | None) -> None:
    if (stored or 0) != expected:
        raise StalePosition(f"{tracking.application_name}: the position is {stored or 0}, "
                            f"not {expected} as read before this batch")


class SQLiteReadModelRecorder(SQLiteTrackingRecorder, ReadModelRecorder):
    """eventsourcing's SQLite tracking recorder plus a read model's tables."""

    def __init__(self, datastore: SQLiteDatastore, *, tables: Sequence[str] = (),
                 **kwargs: Any) -> None:
        self._tables = list(tables)  # read by the library's __init__
        super().__init__(datastore, **kwargs)

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + self._tables

    def write(self, tracking: Tracking, work: Callable[[Tx], None],
              expected: int | None = None) -> None:
        with self.datastore.transaction(commit=True) as c:
            # Take the write lock first: in WAL mode a transaction that reads and then
            # writes fails (SQLITE_BUSY_SNAPSHOT) when the application wrote in between.
            c.execute("UPDATE tracking SET notification_id=notification_id "
                      "WHERE application_name=?", (tracking.application_name,))
            if expected is not None:
                c.execute(self.select_max_tracking_id_statement, (tracking.application_name,))
                _check_position(tracking, expected, c.fetchone()[0])
            work(Tx(c, "?"))
            self._insert_tracking(c, tracking)

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.datastore.transaction(commit=False) as c:
            return Tx(c, "?").all(sql, params)

    def reset(self, tables: Sequence[str], tracking_name: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            for table in tables:
                c.execute(f"DELETE FROM {table}")
            c.execute("DELETE FROM tracking WHERE application_name=?", (tracking_name,))


class PostgresReadModelRecorder(PostgresTrackingRecorder, ReadModelRecorder):
    """eventsourcing's PostgreSQL tracking recorder plus a read model's tables."""

    def __init__(self, datastore: PostgresDatastore, *, tables: Sequence[str] = (),
                 tracking_table_name: str = TRACKING_TABLE, **kwargs: Any) -> None:
        super().__init__(datastore, tracking_table_name=tracking_table_name, **kwargs)
        for statement in tables:
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]

    def create_table(self) -> None:
        # `closer serve`, `closer projections run` and tests may start together.
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))

    def write(self, tracking: Tracking, work: Callable[[Tx], None],
              expected: int | None = None) -> None:
        # Pipeline mode: statements whose results nobody reads travel together, so a
        # batch costs a round trip per handler query, not per statement (rebuilding the
        # pipeline read model: 1,142 -> 4,351 notifications/s, docs/performance.md).
        with (self.datastore.get_connection() as conn, conn.pipeline(), conn.transaction(),
              conn.cursor() as curs):
            if expected is not None:
                # The row (if any) stays locked to this transaction until it commits.
                curs.execute(SQL("SELECT notification_id FROM {0}.{1} WHERE "
                                 "application_name=%s FOR UPDATE").format(
                    Identifier(self.datastore.schema), Identifier(self.tracking_table_name)),
                    (tracking.application_name,))
                row = curs.fetchone()
                _check_position(tracking, expected, None if row is None else
                                row["notification_id"])
            # A query whose rows are read gets a cursor of its own: in pipeline mode a
            # cursor that ran several statements may hand back an earlier one's result
            # (psycopg 3.3.9: "the last operation didn't produce records (command status:
            # INSERT 0 1)", intermittently, rebuilding 1.2 million events; psycopg#604).
            work(Tx(curs, "%s", conn.cursor))
            with conn.cursor() as tracking_cursor:
                self._insert_tracking(tracking_cursor, tracking)

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.datastore.transaction(commit=False) as curs:
            return Tx(curs, "%s").all(sql, params)

    def reset(self, tables: Sequence[str], tracking_name: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            for table in tables:
                curs.execute(SQL("DELETE FROM {0}").format(Identifier(table)))
            curs.execute(SQL("DELETE FROM {0}.{1} WHERE application_name=%s").format(
                Identifier(self.datastore.schema), Identifier(self.tracking_table_name)),
                (tracking_name,))


class ReadModel(Projection[Any]):
    """A read model: its tables (``CREATE TABLE IF NOT EXISTS`` in portable SQL), and
    what each candidacy event does to them (`apply`, inside the write's transaction).

    ``name`` names it on the command line and its tracking row (``read_model.NAME``)."""

    name = ""
    tables: tuple[str, ...] = ()
    """Its ``CREATE TABLE``/``CREATE INDEX`` statements."""
    table_names: tuple[str, ...] = ()
    """The tables a rebuild empties."""
    topic_prefix = CANDIDACY_TOPIC

    @property
    def tracking_name(self) -> str:
        return tracking_name_of(self.name)

    @classmethod
    def on(cls, app: Any) -> ReadModel:
        """This read model on ``app``'s database, its tables made if missing, or made anew
        (empty, its position forgotten, so it follows the whole log again) when their
        statements are not those they were made with: an upgrade that changes a read
        model's tables never reads, nor adds to, rows of an older shape."""
        renew = _schema_changed(app, cls.name, cls.tables, cls.table_names)
        view = view_for(app, cls.tables)
        if renew:
            view.reset((), tracking_name_of(cls.name))
            _record_schema(app, cls.name, cls.tables)
        return cls(view)

    def apply(self, tx: Tx, event: Any, notification_id: int) -> None:
        """What ``event`` (at log position ``notification_id``) does to the tables."""
        raise NotImplementedError

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """The library's `Projection` entry point: one event, in its own transaction."""
        self.view.write(Tracking(self.tracking_name, tracking.notification_id),
                        lambda tx: self.apply(tx, domain_event, tracking.notification_id))

    def process_batch(self, events: Sequence[tuple[Any, int]], position: int,
                      after: int | None = None) -> None:
        """Several events, then the position ``position``, in one transaction; with
        ``after``, only if the stored position is still ``after`` (`StalePosition`)."""
        def work(tx: Tx) -> None:
            for event, notification_id in events:
                self.apply(tx, event, notification_id)
        self.view.write(Tracking(self.tracking_name, position), work, after)

    def position(self) -> int:
        """The last notification id this read model has followed (0: none)."""
        return self.view.max_tracking_id(self.tracking_name) or 0


def tracking_name_of(name: str) -> str:
    """The tracking row of the read model named ``name``."""
    return f"read_model.{name}"


def schema_fingerprint(tables: Sequence[str]) -> str:
    """What identifies a read model's tables: a digest of their statements."""
    return hashlib.sha256("\n".join(tables).encode()).hexdigest()[:32]


def _schema_transaction(app: Any) -> tuple[Any, str]:
    datastore = app.recorder.datastore
    if isinstance(datastore, SQLiteDatastore):
        return datastore, "?"
    if isinstance(datastore, PostgresDatastore):
        return datastore, "%s"
    raise TypeError(f"read models need SQLite or PostgreSQL, not {type(datastore).__name__}")


def _schema_changed(app: Any, name: str, tables: Sequence[str],
                    table_names: Sequence[str]) -> bool:
    """Whether ``name``'s tables were made from other statements (or before fingerprints
    were kept): then they are dropped here, in one transaction, for `view_for` to make."""
    datastore, placeholder = _schema_transaction(app)
    with datastore.transaction(commit=True) as cursor:
        tx = Tx(cursor, placeholder)
        tx.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} "
                   f"(name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL)")
        stored = tx.one(f"SELECT fingerprint FROM {SCHEMA_TABLE} WHERE name=?", (name,))
        if stored is not None and stored[0] == schema_fingerprint(tables):
            return False
        for table in table_names:
            tx.execute(f"DROP TABLE IF EXISTS {table}")
    log.warning("read model's tables made anew: it follows the whole log again",
                read_model=name, was=None if stored is None else stored[0])
    return True


def _record_schema(app: Any, name: str, tables: Sequence[str]) -> None:
    datastore, placeholder = _schema_transaction(app)
    with datastore.transaction(commit=True) as cursor:
        Tx(cursor, placeholder).execute(
            f"INSERT INTO {SCHEMA_TABLE} (name, fingerprint) VALUES (?, ?) ON CONFLICT (name) "
            f"DO UPDATE SET fingerprint=excluded.fingerprint", (name, schema_fingerprint(tables)))


def view_for(app: Any, tables: Sequence[str]) -> ReadModelRecorder:
    """A read-model recorder on ``app``'s own database (its datastore, so its pool),
    with ``tables`` created if missing."""
    datastore = app.recorder.datastore
    recorder: ReadModelRecorder
    if isinstance(datastore, SQLiteDatastore):
        recorder = SQLiteReadModelRecorder(datastore, tables=tables)
    elif isinstance(datastore, PostgresDatastore):
        recorder = PostgresReadModelRecorder(datastore, tables=tables)
    else:
        raise TypeError(f"read models need SQLite or PostgreSQL, not {type(datastore).__name__}")
    recorder.create_table()
    return recorder


@dataclass(frozen=True, slots=True)
class Lag:
    """How far one read model stands behind the log."""

    name: str
    position: int
    log_max: int

    @property
    def behind(self) -> int:
        """Notification ids not yet followed (an upper bound: ids can have gaps)."""
        return max(0, self.log_max - self.position)


class Follower:
    """Catches read models up with the application's notification log, a batch of
    notifications per transaction, and keeps them current (`run_forever`)."""

    def __init__(self, app: Any, models: Sequence[ReadModel], *, batch: int = 500) -> None:
        self.app = app
        self.models = list(models)
        self.batch = batch

    def log_max(self) -> int:
        """The log's highest notification id (0: an empty log)."""
        return self.app.recorder.max_notification_id() or 0

    def lags(self) -> list[Lag]:
        """Each read model's position against the log's maximum."""
        top = self.log_max()
        return [Lag(m.name, m.position(), top) for m in self.models]

    def step(self, model: ReadModel) -> int:
        """Follow one batch of notifications for ``model``; answers how many were read
        (0: it is current)."""
        start = model.position() + 1
        notifications = self.app.recorder.select_notifications(start, self.batch)
        if not notifications:
            return 0
        events: list[tuple[Any, int]] = []
        for notification in notifications:
            if not notification.topic.startswith(model.topic_prefix):
                continue
            try:
                events.append((self.app.mapper.to_domain_event(notification), notification.id))
            except CorruptHistory as error:
                # One unreadable event must not stop the dashboard; `closer doctor` lists it.
                log.error("read model passed over an undecodable event", read_model=model.name,
                          notification_id=notification.id, error=str(error))
        try:
            model.process_batch(events, notifications[-1].id, start - 1)
        except StalePosition:
            # Another follower (`closer serve`'s, a rebuild) wrote first: go on from there.
            log.info("read model moved by another follower", read_model=model.name)
        return len(notifications)

    def catch_up(self, model: ReadModel, progress: Callable[[int], Any] | None = None) -> int:
        """Follow ``model`` to the end of the log; ``progress(n)`` after each batch."""
        total = 0
        while read := self.step(model):
            total += read
            if progress is not None:
                progress(model.position())
        return total

    def run_once(self) -> int:
        """Catch every read model up; answers how many notifications were read."""
        return sum(self.catch_up(model) for model in self.models)

    def rebuild(self, model: ReadModel, progress: Callable[[int], Any] | None = None) -> int:
        """Empty ``model``'s tables and position (one transaction), then follow the whole
        log again: the very rows incremental following gave."""
        model.view.reset(model.table_names, model.tracking_name)
        return self.catch_up(model, progress)

    def run_forever(self, every: float, stop: threading.Event | None = None,
                    on_pass: Callable[[], Any] | None = None) -> None:
        """Catch up every ``every`` seconds until ``stop`` is set; ``on_pass`` after each
        completed pass (a supervisor's heartbeat)."""
        while stop is None or not stop.is_set():
            read = self.run_once()
            if read:
                log.info("read models followed", notifications=read)
            if on_pass is not None:
                on_pass()
            if stop is not None:
                stop.wait(every)
