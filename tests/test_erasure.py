"""Erasure by crypto-shredding (issue 17, item 4).

After `closer erase`, no personal datum of the erased candidate (name, email, phone,
"why I fit", hesitation texts and answers, the employer's note) is in the bytes of the
SQLite files (the WAL and shared memory included), of the log lines Closer wrote, or of
a later audit export; on PostgreSQL, in no table.  The other candidate's data still
reads.  Stages, times, the dashboard pages, replay and `audit verify` still work."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from api_support import WORKSPACE, TestClient
from builders import PANEL, interview
from cli_support import configure
from cli_support import run as run_cli
from dashboard_support import ORIGIN, sign_in

from api.app import create_app
from api.auth import create_token
from api.logs import configure_logging
from api.outbox_cli import build_dispatcher
from api.read_models import follower
from api.settings import Settings, get_settings
from api.wiring import build_candidacies
from engine.application import Candidacies
from engine.errors import CandidacyErased
from engine.personal_data import ERASED, WITHHELD
from engine.values import Actor

COACH = Actor(user="coach@agency", workspace=WORKSPACE)
ZELDA = {"name": "Zelda Quuxbridge", "email": "zelda.quuxbridge@secret.example",
         "phone": "+44 7700 900123", "why_i_fit": "I built Quuxbase at Fjordlight"}
HESITATION = "Worried Zelda lacks on-call experience in Fjordlight"
ANSWER = "Zelda ran the Fjordlight pager rota for two years"
NOTE = "Zelda impressed the Fjordlight panel"
SECRETS = [ZELDA["name"], ZELDA["email"], ZELDA["phone"], ZELDA["why_i_fit"], HESITATION,
           ANSWER, NOTE, "Quuxbridge", "zelda.quux", "7700 900123"]
OTTO = {"name": "Otto Keepwell", "email": "otto.keepwell@kept.example"}


_LOG: list[Any] = []


def run(*args: str, code: int = 0) -> str:
    """``closer ARGS``; then Closer's log lines go to the test's log file again (the
    command pointed them at its own, closed, output)."""
    try:
        return run_cli(*args, code=code)
    finally:
        if _LOG:
            configure_logging("json", "info", stream=_LOG[-1], cache=False)


def _walk(app: Candidacies, candidate: dict[str, Any], *, note: str) -> str:
    """A candidacy with every kind of personal datum, a thank-you the outbox sends."""
    cid = app.record_interview(COACH, interview(candidate=candidate,
                                                interviewers=PANEL)).candidacy_id
    hesitation = app.raise_hesitation(COACH, cid, HESITATION.replace("Zelda", candidate["name"]))
    app.address_hesitation(COACH, cid, hesitation.data["hesitation_id"],
                           ANSWER.replace("Zelda", candidate["name"]))
    app.close_next_step(COACH, cid, "Onsite with the CTO")
    app.send_thank_you(COACH, cid, "email", mode="send_for_me")
    app.receive_reply(COACH, cid, "update", note=note)
    return cid


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A SQLite store with Zelda's and Otto's candidacies, read models followed, the
    outbox run, and Closer's log lines (JSON) written to a file."""
    url = f"sqlite:///{tmp_path}/closer.db"
    configure(monkeypatch, url, tmp_path)
    monkeypatch.setenv("CLOSER_LOG_LEVEL", "info")
    get_settings.cache_clear()
    log_file = (tmp_path / "closer.log").open("w")
    _LOG.append(log_file)
    configure_logging("json", "info", stream=log_file, cache=False)
    app = build_candidacies()
    zelda = _walk(app, ZELDA, note=NOTE)
    otto = _walk(app, OTTO, note="Otto was sharp")
    _follow(app)
    dispatcher = build_dispatcher(app, get_settings())
    dispatcher.run_once()
    dispatcher.release()
    run("audit", "checkpoint")  # signed before the erasure: verify must still prove it
    assert any(ZELDA["name"] in row[0] for row in app.recorder.read(
        "SELECT candidate FROM rm_pipeline WHERE candidate IS NOT NULL"))
    yield {"app": app, "zelda": zelda, "otto": otto, "tmp": tmp_path, "log": log_file}
    app.close()
    _LOG.remove(log_file)
    log_file.close()


def _follow(app: Candidacies) -> None:
    reader = follower(app)
    while reader.run_once():
        pass


def _files(tmp: Path) -> dict[str, bytes]:
    found = {}
    for name in ("closer.db", "closer.db-wal", "closer.db-shm", "closer.log", "export.jsonl",
                 "export.jsonl.csv", "cli.txt"):
        path = tmp / name
        if path.exists():
            found[name] = path.read_bytes()
    return found


def _leaks(files: dict[str, bytes], secrets: list[str]) -> list[tuple[str, str]]:
    return [(name, secret) for name, data in files.items() for secret in secrets
            if secret.encode() in data or secret.lower().encode() in data.lower()]


def test_after_closer_erase_no_personal_datum_is_in_the_files_logs_or_export(
        store: dict[str, Any]) -> None:
    app, zelda, otto, tmp = store["app"], store["zelda"], store["otto"], store["tmp"]
    stage = app.get(zelda, WORKSPACE).stage
    before = _files(tmp)
    # The grep finds what is there: the read models and outbox keep plaintext before.
    assert _leaks(before, [ZELDA["name"]]), "the grep would find nothing anyway"
    output = run("erase", "--candidacy", zelda, "--reason", "GDPR request #4411",
                 "--by", "dpo@agency")
    assert "erased" in output and "VACUUM done" in output and "WAL emptied" in output
    verified = run("audit", "verify")  # the read models too: erase caught them up
    export = run("audit", "export", "--out", str(tmp / "export.jsonl"), "--csv")
    (tmp / "cli.txt").write_text(output + verified + export)
    store["log"].flush()

    assert _leaks(_files(tmp), SECRETS) == []
    # Otto's data is still there and reads.
    assert _leaks(_files(tmp), [OTTO["name"]])
    other = app.get(otto, WORKSPACE)
    assert other.candidate["name"] == OTTO["name"]
    assert other.hesitations[0]["text"].startswith("Worried Otto")
    # Zelda's candidacy: stages and times as they were, personal fields "erased".
    erased = app.get(zelda, WORKSPACE)
    assert erased.erased and erased.stage == stage
    assert erased.candidate == {"name": ERASED, "email": ERASED, "phone": ERASED,
                                "why_i_fit": ERASED}
    assert [h["text"] for h in erased.hesitations] == [ERASED]
    assert erased.interview["interviewed_at"] == other.interview["interviewed_at"]
    history = app.history(zelda, WORKSPACE)
    assert history[-1].type == "Erased" and history[-1].data == {"reason": "GDPR request #4411"}
    assert history[1].data["text"] == ERASED
    # The export names the erased candidacy.
    header = (tmp / "export.jsonl").read_bytes().splitlines()[0]
    assert zelda.encode() in header and b"erased_candidacies" in header


def test_an_erased_candidacy_takes_no_command_and_erasing_again_only_rewrites(
        store: dict[str, Any]) -> None:
    app, zelda = store["app"], store["zelda"]
    run("erase", "--candidacy", zelda, "--reason", "request 1")
    app.recent.take(app.get(zelda, WORKSPACE).id)  # (this process's copy: read it again)
    with pytest.raises(CandidacyErased, match="was erased"):
        app.raise_hesitation(COACH, zelda, "one more")
    assert "already erased" in run("erase", "--candidacy", zelda, "--reason", "again")
    assert app.row(zelda).due_at is None and app.row(zelda).candidate == ERASED
    assert "no candidacy" in run("erase", "--candidacy", "nope", "--reason", "x", code=1)


def test_the_dashboard_and_the_api_render_an_erased_candidacy(
        store: dict[str, Any]) -> None:
    app, zelda, tmp = store["app"], store["zelda"], store["tmp"]
    run("erase", "--candidacy", zelda, "--reason", "request 2")
    _follow(app)
    settings = Settings(database_url=get_settings().database_url,
                        tasks_dir=str(tmp / "tasks"), session_secret="s" * 40)
    with TestClient(create_app(settings, candidacies=app), base_url=ORIGIN) as client:
        sign_in(client, create_token(app, workspace=WORKSPACE, role="recruiter"))
        for path in ("/dashboard/today", "/dashboard/candidacies", "/dashboard/pipeline",
                     "/dashboard/compliance", "/dashboard/at-risk", "/dashboard/messages",
                     f"/dashboard/candidacies/{zelda}"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert not [s for s in SECRETS if s in page.text], path
        token = create_token(app, workspace=WORKSPACE, role="recruiter")
        headers = {"Authorization": f"Bearer {token}"}
        body = client.get(f"/candidacies/{zelda}", headers=headers)
        assert body.status_code == 200 and ZELDA["name"] not in body.text
        refused = client.post(f"/candidacies/{zelda}/hesitations", headers=headers,
                              json={"text": "more"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"].endswith("candidacy-erased")
        assert zelda in refused.json()["detail"]


def test_replay_reads_an_erased_store_as_before(store: dict[str, Any]) -> None:
    """Replay never needed the personal data: the same figures before and after."""
    zelda = store["zelda"]
    until = (store["app"].clock.now() + timedelta(days=60)).isoformat()
    before = _replayed(run("replay", "-p", "default", "--json", "--until", until))
    run("erase", "--candidacy", zelda, "--reason", "request 3")
    after = _replayed(run("replay", "-p", "default", "--json", "--until", until))
    assert after == before and after


def _replayed(output: str) -> Any:
    import json

    start = output.index("{")
    data = json.loads(output[start:output.rindex("}") + 1])
    data.pop("seconds", None)  # (how long it took)
    return data


def test_without_a_keyring_sealed_fields_read_withheld(store: dict[str, Any]) -> None:
    """Replay reads the tables with a mapper of its own (no keys): never the plaintext."""
    from engine.codec import state_decoder, stored_event_mapper

    app, otto = store["app"], store["otto"]
    decoded = state_decoder(stored_event_mapper())
    [(topic, state)] = [(r[2], bytes(r[3])) for r in app.recorder.select_chain(
        app.get(otto, WORKSPACE).id)][:1]
    data = decoded(app.get(otto, WORKSPACE).id, 1, topic, state)
    assert data["candidate"]["name"] == WITHHELD and data["company"]
    assert decoded.__name__  # (the app's own mapper opens them)
    assert state_decoder(app.mapper)(app.get(otto, WORKSPACE).id, 1, topic, state)[
        "candidate"]["name"] == OTTO["name"]


@pytest.mark.postgres
def test_on_postgresql_no_table_holds_the_erased_candidates_data(
        postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import truncate_postgres

    truncate_postgres(postgres_url)
    configure(monkeypatch, postgres_url, tmp_path)
    log_file = (tmp_path / "closer.log").open("w")
    _LOG.append(log_file)
    configure_logging("json", "info", stream=log_file, cache=False)
    app = build_candidacies()
    try:
        zelda = _walk(app, ZELDA, note=NOTE)
        otto = _walk(app, OTTO, note="Otto was sharp")
        _follow(app)
        dispatcher = build_dispatcher(app, get_settings())
        dispatcher.run_once()
        dispatcher.release()
        assert _pg_leaks(postgres_url, [ZELDA["name"]])  # the read models hold it before
        monkeypatch.setenv("CLOSER_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
        run("audit", "checkpoint")
        output = run("erase", "--candidacy", zelda, "--reason", "GDPR request #4412")
        assert "VACUUM FULL" in output
        _follow(app)
        assert _pg_leaks(postgres_url, SECRETS) == []
        assert _pg_leaks(postgres_url, [OTTO["name"]])
        assert app.get(otto, WORKSPACE).candidate["name"] == OTTO["name"]
        run("audit", "verify")
    finally:
        app.close()
        _LOG.remove(log_file)
        log_file.close()
    assert _leaks({"closer.log": (tmp_path / "closer.log").read_bytes()}, SECRETS) == []
    data_dir = _pg_data_dir(postgres_url)
    if data_dir is not None:  # (readable only when the tests run as the server's user)
        found = subprocess.run(["grep", "-rlaF", ZELDA["email"], data_dir],
                               capture_output=True, text=True, check=False)
        # Docs/audit.md: the WAL keeps old copies until recycled; the tables do not.
        assert not [f for f in found.stdout.split() if "/base/" in f], found.stdout


def _pg_leaks(url: str, secrets: list[str]) -> list[tuple[str, str]]:
    """``(table, secret)`` for every secret found in any column of any table, as text."""
    leaks = []
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        for table in tables:
            rows = conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()
            text = "\n".join(r[0] for r in rows)
            # Bytea columns print as hex: look for the secrets' hex too.
            leaks += [(table, s) for s in secrets
                      if s in text or s.encode().hex() in text]
    return leaks


def _pg_data_dir(url: str) -> str | None:
    try:
        with psycopg.connect(url) as conn:
            path = conn.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
    except psycopg.Error:
        return None
    return path if Path(path).exists() and _readable(Path(path) / "base") else None


def _readable(path: Path) -> bool:
    try:
        next(path.iterdir())
    except (OSError, StopIteration):
        return False
    return True


def test_the_in_memory_store_seals_and_erases_alike(clock: Any) -> None:
    """The fake store holds the keys as the SQL stores do (the unit tier's erasure)."""
    from conftest import memory_url
    from engine.store import eventsourcing_env

    app = Candidacies(eventsourcing_env(memory_url()), clock=clock, recent=0)
    zelda = app.record_interview(COACH, interview(candidate=ZELDA)).candidacy_id
    otto = app.record_interview(COACH, interview(candidate=OTTO)).candidacy_id
    app.raise_hesitation(COACH, zelda, HESITATION)
    stored = b"".join(r[3] for r in app.recorder.select_chain(app.get(zelda, WORKSPACE).id))
    assert ZELDA["name"].encode() not in stored and b'"_type_":"sealed"' in stored
    assert app.get(zelda, WORKSPACE).hesitations[0]["text"] == HESITATION
    app.erase(COACH, zelda, "request 5")
    assert app.erased_ids() == [zelda] and app.keyring.erased(zelda)
    assert app.keyring.cipher(zelda) is None
    assert app.get(zelda, WORKSPACE).candidate["email"] == ERASED
    assert app.history(zelda, WORKSPACE)[1].data["text"] == ERASED
    assert app.get(otto, WORKSPACE).candidate["email"] == OTTO["email"]
    with pytest.raises(CandidacyErased):
        app.erase(COACH, zelda, "again")


def test_an_admin_erases_over_http_and_others_may_not(store: dict[str, Any]) -> None:
    app, zelda, otto, tmp = store["app"], store["zelda"], store["otto"], store["tmp"]
    settings = Settings(database_url=get_settings().database_url,
                        tasks_dir=str(tmp / "tasks"), session_secret="s" * 40)
    with TestClient(create_app(settings, candidacies=app)) as client:
        def erase(role: str, candidacy_id: str) -> Any:
            token = create_token(app, workspace=WORKSPACE, role=role)
            return client.post("/audit/erasures", headers={"Authorization": f"Bearer {token}"},
                               json={"candidacy_id": candidacy_id, "reason": "request 6"})

        assert erase("recruiter", zelda).status_code == 403
        done = erase("admin", zelda)
        assert done.status_code == 200, done.text
        assert done.json()["storage"]["wal_truncated"] is True
        assert erase("admin", zelda).json()["type"].endswith("candidacy-erased")
    assert app.get(zelda, WORKSPACE).candidate["name"] == ERASED
    assert app.get(otto, WORKSPACE).candidate["name"] == OTTO["name"]
    assert not [s for s in SECRETS if s.encode() in (tmp / "closer.db").read_bytes()]


def test_log_lines_redact_contacts_but_keep_who_acted(tmp_path: Path) -> None:
    """A channel's error quoting a recipient is logged without the address or number."""
    import structlog

    path = tmp_path / "lines.log"
    with path.open("w") as stream:
        configure_logging("json", "info", stream=stream, cache=False)
        structlog.get_logger("closer.outbox").warning(
            "delivery failed", actor="coach@agency.example",
            error=f"550 no mailbox <{ZELDA['email']}>; voicemail to {ZELDA['phone']} failed")
    text = path.read_text()
    assert ZELDA["email"] not in text and ZELDA["phone"] not in text
    assert "[redacted]" in text and "coach@agency.example" in text


FREE_TEXT_FIELDS = {"body", "subject", "to", "context", "receipt", "error", "findings",
                    "candidate", "text", "answer", "note", "description", "before", "after"}
"""Field names of an event that hold words a person wrote or a message carried."""


@pytest.mark.unit
def test_every_event_field_that_carries_free_text_is_sealed() -> None:
    """A new event with a body (the outbox's `Edited`) must be registered for sealing,
    or its text would outlive an erasure in the events table."""
    from adapters.outbox import OutboxMessage
    from engine.candidacy import Candidacy
    from engine.personal_data import SEALED

    unsealed = []
    for aggregate, topic in ((OutboxMessage, "adapters.outbox:OutboxMessage."),
                             (Candidacy, "engine.candidacy:Candidacy.")):
        for name, event in vars(aggregate).items():
            if not (isinstance(event, type) and issubclass(event, aggregate.Event)):
                continue
            fields = set(getattr(event, "__annotations__", {})) & FREE_TEXT_FIELDS
            if aggregate is Candidacy:
                fields -= {"to"}  # a thank-you is *to* the panel: not the candidate's data
            sealed = {path[0] for path in SEALED[topic + name].paths} if (
                topic + name in SEALED) else set()
            unsealed += [f"{name}.{field}" for field in sorted(fields - sealed)]
    assert unsealed == []


@pytest.mark.unit
def test_the_library_still_records_a_save_through_record() -> None:
    """`Candidacies._record` adds a new subject's key to its first save: it relies on
    eventsourcing 9.5.6's `save` calling `_record(processing_event)` and `_record`
    putting ``saved_kwargs`` with the events.  An upgrade that changes either fails here."""
    import inspect

    from eventsourcing.application import Application

    assert "self._record(processing_event)" in inspect.getsource(Application.save)
    assert list(inspect.signature(Application._record).parameters) == [
        "self", "processing_event"]
    assert "**processing_event.saved_kwargs" in inspect.getsource(Application._record)
