"""The audit's use cases wired to the settings' key, for the CLI, the HTTP route and
`closer serve`'s checkpoint worker alike (`engine.audit` does the work)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from api.audit_key import public_hex, signing_key
from api.settings import Settings, get_settings
from closer_verify.records import public_key_from_hex
from engine import audit
from engine.audit_store import Checkpoint
from engine.errors import InvalidInput


def _now_ms(candidacies: Any) -> int:
    return int(candidacies.clock.now().timestamp() * 1000)


def record_checkpoint(candidacies: Any, settings: Settings | None = None
                      ) -> tuple[Checkpoint | None, audit.AuditReport]:
    """Verify what is new and sign a tree head over the log (see `engine.audit.checkpoint`)."""
    key = signing_key((settings or get_settings()).audit_key_path())
    return audit.checkpoint(candidacies.recorder, key.sign, key.public_key(),
                            _now_ms(candidacies))


def verify_store(candidacies: Any, settings: Settings | None = None, *,
                 public_key: str | None = None, since: int | None = None,
                 candidacy: str | None = None, snapshots: bool = True,
                 read_models: bool = True) -> audit.AuditReport:
    """`engine.audit.verify` (or one candidacy's chain) with the store's own public key,
    or ``public_key`` (hex) when checking a store signed elsewhere; snapshots and current
    rows too, and the read models' tables (`verify_read_model_tables`)."""
    if public_key:
        key = public_key_from_hex(public_key)
    else:
        key = signing_key((settings or get_settings()).audit_key_path(),
                          create=False).public_key()
    if candidacy is not None:
        try:
            uid = UUID(candidacy)
        except ValueError:
            raise InvalidInput("candidacy", f"{candidacy!r} is not a candidacy id") from None
        report = audit.AuditReport()
        report.findings = audit.verify_chain(candidacies.recorder, uid)
        report.events = len(candidacies.recorder.select_chain(uid))
        if not report.events:
            raise InvalidInput("candidacy", f"no candidacy {candidacy}")
        if read_models:
            report.read_model_rows_checked, findings = verify_read_model_tables(
                candidacies, uid)
            report.findings.extend(findings)
        return report
    report = audit.verify(candidacies.recorder, key, since=since)
    if snapshots:
        checked, findings = audit.verify_snapshots(candidacies)
        report.snapshots_checked = checked
        report.findings.extend(findings)
        report.rows_checked, findings = audit.verify_rows(candidacies)
        report.findings.extend(findings)
    if read_models:
        report.read_model_rows_checked, findings = verify_read_model_tables(candidacies)
        report.findings.extend(findings)
    return report


def verify_read_model_tables(candidacies: Any, candidacy: UUID | None = None
                             ) -> tuple[int, list[audit.Finding]]:
    """The dashboard's read models' stored rows against those their events make
    (`engine.audit_read_models`); none on the in-memory store, which keeps no read model."""
    from eventsourcing.persistence import PersistenceError
    from eventsourcing.postgres import PostgresDatastore
    from eventsourcing.sqlite import SQLiteDatastore

    from api.read_models import READ_MODELS
    from engine.audit_read_models import READ_MODEL, verify_read_models
    from engine.follower import SCHEMA_TABLE, schema_fingerprint, view_for

    datastore = getattr(candidacies.recorder, "datastore", None)
    if not isinstance(datastore, SQLiteDatastore | PostgresDatastore):
        return 0, []
    # Not `ReadModel.on`, which drops tables made from other statements: verify must not
    # change what it checks (a fingerprint edited in SQL would have it drop the rows).
    models = [cls(view_for(candidacies, cls.tables)) for cls in READ_MODELS.values()]
    try:
        made = dict(models[0].view.read(f"SELECT name, fingerprint FROM {SCHEMA_TABLE}"))
    except PersistenceError:  # no schema table yet: no read model was ever made
        made = {}
    other = [m for m in models
             if made.get(m.name, schema_fingerprint(m.tables)) != schema_fingerprint(m.tables)]
    findings = [audit.Finding(READ_MODEL, None, None, None,
                              f"read model {m.name}: its tables were made from other "
                              f"statements (fingerprint {made[m.name]}, expected "
                              f"{schema_fingerprint(m.tables)}); not compared: `closer "
                              f"projections rebuild {m.name}` makes them anew")
                for m in other]
    checked, more = verify_read_models(candidacies, [m for m in models if m not in other],
                                       candidacy=candidacy)
    return checked, findings + more


def store_public_key(settings: Settings | None = None) -> str:
    return public_hex(signing_key((settings or get_settings()).audit_key_path()))


def chain_warning(candidacies: Any, candidacy_id: str) -> audit.Finding | None:
    """The first break in a candidacy's chain, for its readers (None: intact)."""
    return chain_check(candidacies, candidacy_id)[0]


def chain_check(candidacies: Any, candidacy_id: str) -> tuple[audit.Finding | None, int | None]:
    """`chain_warning`, and the candidacy's highest stored version (`audit.
    check_before_write`; None, None for an id that is no candidacy's)."""
    try:
        uid = UUID(str(candidacy_id))
    except ValueError:
        return None, None
    return audit.check_before_write(candidacies.recorder, uid)


class LogNotIntact(RuntimeError):
    """`closer serve`'s checkpoint worker found the log broken: it fails (and /healthz
    shows it down, with the first finding) until someone looks."""


def run_checkpoints(candidacies: Any, settings: Settings, stop: Any, beat: Any) -> None:
    """`closer serve`'s worker: a checkpoint every ``audit_checkpoint_every_seconds``
    (none while the log is empty), until ``stop`` is set."""
    while not stop.is_set():
        if candidacies.recorder.max_notification_id():
            recorded, report = record_checkpoint(candidacies, settings)
            if recorded is None:
                first = report.first
                raise LogNotIntact(f"the log does not verify: {first.line() if first else ''}")
        beat()
        stop.wait(settings.audit_checkpoint_every_seconds)


def erasure_tables(candidacies: Any) -> list[str]:
    """The tables an erasure deletes from or overwrites, which PostgreSQL rewrites after
    it (``VACUUM FULL``).  Not the events' nor the snapshots' tables: they only ever held
    the sealed values, and rewriting them would lock the whole log for minutes."""
    del candidacies  # (the same names on every store)
    return ["closer_candidacies", "closer_subject_keys", "closer_erasures",
            "closer_messages", "rm_pipeline", "rm_timeline", "rm_overrides"]


def erase(candidacies: Any, actor: Any, candidacy_id: str, reason: str, *,
          again: bool = False) -> tuple[Any, dict[str, Any]]:
    """`closer erase` and ``POST /audit/erasures``: the read models' scrubs registered,
    the erasure recorded (its transaction deletes the keys and runs the scrubs), the read
    models caught up past it (so their rows are, at once, what `audit verify` rebuilds
    from the events), then the files rewritten.  With ``again``, an erased candidacy only
    has its files rewritten (outcome None); else it is refused (`CandidacyErased`)."""
    from api.read_models import follower, read_models
    from engine.personal_data import scrub_storage

    read_models(candidacies)
    outcome = None
    if not (again and candidacies.keyring.erased(candidacy_id)):
        outcome = candidacies.erase(actor, candidacy_id, reason)
    follower(candidacies).run_once()
    return outcome, scrub_storage(candidacies.recorder, erasure_tables(candidacies))
