"""`closer audit` end to end: checkpoint, verify, export, and the offline checker that
refuses an export with one byte changed, one line removed, or a line of another export
spliced in, naming the line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api.audit_key import public_hex, signing_key
from closer_verify.export import ExportRefused, check_export
from closer_verify.records import public_key_from_hex
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.store import eventsourcing_env
from engine.values import Actor
from tests.builders import candidacy_at
from tests.cli_support import configure, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path}/closer.db"
    configure(monkeypatch, url, tmp_path)
    monkeypatch.setenv("CLOSER_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    app = Candidacies(eventsourcing_env(url),
                      clock=FixedClock(datetime(2026, 11, 25, 10, tzinfo=UTC)))
    actor = Actor(user="coach@agency.example", workspace="agency", on_behalf_of="maya")
    ids = [candidacy_at(app, actor, "next_step_closed") for _ in range(2)]
    for candidacy_id in ids:  # the outbox sends these: messages, bodies, deliveries
        app.send_thank_you(actor, candidacy_id, "email", mode="send_for_me")
    app.close()
    return {"url": url, "ids": ids, "tmp": tmp_path,
            "public": public_hex(signing_key(tmp_path / "audit.key"))}


def _export(store: dict[str, Any], name: str, *args: str) -> Path:
    path = store["tmp"] / name
    out = run("audit", "export", "--out", str(path), *args)
    assert "exported" in out
    return path


def test_checkpoint_verify_and_an_export_verified_offline(store: dict[str, Any]) -> None:
    assert "checkpoint #1" in run("audit", "checkpoint")
    assert run("audit", "checkpoints").startswith("#1 ")
    assert "intact" in run("audit", "verify")
    assert "intact" in run("audit", "verify", "--since", "1")
    assert "no checkpoint #7" in run("audit", "verify", "--since", "7", code=1)
    assert "intact" in run("audit", "verify", "--candidacy", store["ids"][0])
    assert run("audit", "public-key").strip() == store["public"]
    run("dispatch", "--once")
    path = _export(store, "one.jsonl", "--candidacy", store["ids"][0], "--csv")
    lines = path.read_bytes().splitlines(keepends=True)
    check = check_export(lines, public_key_from_hex(store["public"]))
    assert check.candidacies == {store["ids"][0]}
    assert check.checkpoints == 1  # checkpoint 1, proven consistent with the export's head
    events = [json.loads(line) for line in lines if b'"kind":"event"' in line]
    kinds = {e["aggregate"] for e in events}
    assert kinds == {"candidacy", "message"}  # the thank-you's message, with its body
    assert all(e["event"]["actor"] for e in events if e["aggregate"] == "candidacy")
    assert (store["tmp"] / "one.jsonl.csv").read_text().startswith("notification_id,")
    # The standalone checker: a plain interpreter, nothing of Closer on its path but it.
    done = subprocess.run([sys.executable, "-I", "-c",
                           "import sys; sys.path.insert(0, sys.argv[1]); "
                           "import runpy; sys.argv = sys.argv[1:]; sys.argv[0] = 'x'; "
                           "runpy.run_module('closer_verify', run_name='__main__')",
                           str(ROOT), str(path), "--public-key", store["public"]],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "verified:" in done.stdout
    assert "verified:" in run("audit", "check-export", str(path), "--public-key",
                              store["public"])


def test_the_standalone_checker_imports_nothing_of_closer() -> None:
    code = ("import sys, closer_verify.__main__; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('engine', 'adapters', 'api', 'eventsourcing', 'psycopg', 'orjson')]; "
            "print(bad); assert not bad")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _refused(lines: list[bytes], public: str) -> ExportRefused:
    with pytest.raises(ExportRefused) as refused:
        check_export(lines, public_key_from_hex(public))
    return refused.value


def test_a_changed_removed_or_spliced_line_is_refused_with_its_number(
        store: dict[str, Any]) -> None:
    first = _export(store, "a.jsonl", "--candidacy", store["ids"][0])
    other = _export(store, "b.jsonl", "--candidacy", store["ids"][1])
    lines = first.read_bytes().splitlines(keepends=True)
    foreign = other.read_bytes().splitlines(keepends=True)
    public = store["public"]
    assert len(lines) > 5

    # One byte changed, wherever it is: in a stored state, a proof, a readable field.
    for number in range(1, len(lines) + 1):
        line = lines[number - 1]
        for at in (len(line) // 3, len(line) // 2, len(line) - 80):
            changed = list(lines)
            byte = line[at:at + 1]
            changed[number - 1] = line[:at] + (b"0" if byte != b"0" else b"1") + line[at + 1:]
            assert _refused(changed, public).line == number, (number, at)

    # One line removed: refused at the line that now sits in its place.
    for number in range(1, len(lines) + 1):
        cut = lines[:number - 1] + lines[number:]
        assert _refused(cut, public).line == number

    # A line of another export spliced in (an event line of the other candidacy).
    event_at = next(i for i, line in enumerate(foreign) if b'"kind":"event"' in line)
    for number in (2, len(lines) // 2, len(lines) - 1):
        spliced = lines[:number - 1] + [foreign[event_at]] + lines[number - 1:]
        assert _refused(spliced, public).line == number
        replaced = lines[:number - 1] + [foreign[event_at]] + lines[number:]
        assert _refused(replaced, public).line == number

    # Another key: refused at the header.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    assert _refused(lines, stranger).line == 1
    out = run("audit", "check-export", str(first), "--public-key", stranger, code=1)
    assert "line 1" in out or out == ""


def test_verify_exits_non_zero_and_names_the_event(store: dict[str, Any]) -> None:
    import sqlite3

    db = sqlite3.connect(store["url"].removeprefix("sqlite:///"))
    state, = db.execute("SELECT state FROM stored_events WHERE originator_version=2 "
                        "AND originator_id=?", (store["ids"][1].replace("-", ""),)).fetchone()
    db.execute("UPDATE stored_events SET state=? WHERE originator_version=2 AND "
               "originator_id=?", (state.replace(b"maya", b"mallory"),
                                   store["ids"][1].replace("-", "")))
    db.commit()
    db.close()
    out = run("audit", "verify", code=1)
    assert f"altered: candidacy {store['ids'][1]}, version 2" in out
    out = run("audit", "checkpoint", code=1)  # the first one verifies the whole log
    assert "never certified" in out
    history = run("history", store["ids"][1])
    assert "chain is broken" in history and "version 2" in history


def test_serves_checkpoint_worker_records_checkpoints_and_fails_on_a_broken_log(
        store: dict[str, Any]) -> None:
    import sqlite3
    import threading

    from api.audit_service import LogNotIntact, run_checkpoints
    from api.settings import Settings

    settings = Settings(database_url=store["url"],
                        audit_key_file=str(store["tmp"] / "audit.key"))
    app = Candidacies(eventsourcing_env(store["url"]))
    stop = threading.Event()
    run_checkpoints(app, settings, stop, stop.set)  # one pass, then stop
    assert [cp.seq for cp in app.recorder.select_checkpoints()] == [1]
    app.pause_cadence(Actor(user="coach@agency.example", workspace="agency"),
                      store["ids"][0], "candidate travelling")
    db = sqlite3.connect(store["url"].removeprefix("sqlite:///"))
    db.execute("UPDATE stored_events SET state=CAST('{}' AS BLOB) WHERE rowid="
               "(SELECT MAX(rowid) FROM stored_events)")
    db.commit()
    db.close()
    stop.clear()
    with pytest.raises(LogNotIntact, match="altered"):
        run_checkpoints(app, settings, stop, stop.set)
    assert [cp.seq for cp in app.recorder.select_checkpoints()] == [1]
    app.close()


def test_an_export_of_a_time_range_and_its_csv(store: dict[str, Any]) -> None:
    import csv

    everything = _export(store, "all.jsonl", "--csv")
    later = _export(store, "later.jsonl", "--from", "2026-11-26T00:00:00+00:00")
    within = _export(store, "within.jsonl", "--from", "2026-11-25T00:00:00+00:00",
                     "--to", "2026-11-26T00:00:00+00:00")
    key = public_key_from_hex(store["public"])
    total = check_export(everything.read_bytes().splitlines(), key)
    assert check_export(later.read_bytes().splitlines(), key).events == 0
    assert check_export(within.read_bytes().splitlines(), key).events == total.events == 8
    rows = list(csv.DictReader((store["tmp"] / "all.jsonl.csv").open()))
    assert len(rows) == 8
    first = rows[0]
    assert (first["type"], first["actor"], first["on_behalf_of"], first["workspace"]) == \
        ("InterviewRecorded", "coach@agency.example", "maya", "agency")
    assert first["at"].startswith("2026-11-25T10:00")


def test_verify_names_a_read_model_row_changed_in_sql(store: dict[str, Any]) -> None:
    import sqlite3

    run("projections", "run", "--once")
    assert "read-model rows checked" in run("audit", "verify")
    db = sqlite3.connect(store["url"].removeprefix("sqlite:///"))
    db.execute("UPDATE rm_pipeline SET stage='advanced' WHERE candidacy_id=?",
               (store["ids"][0],))
    db.commit()
    db.close()
    out = run("audit", "verify", code=1)
    assert f"read_model: candidacy {store['ids'][0]}" in out and "rm_pipeline row" in out
    assert "rm_pipeline row" in run("audit", "verify", "--candidacy", store["ids"][0], code=1)
    assert "intact" in run("audit", "verify", "--candidacy", store["ids"][1])
    assert "intact" in run("audit", "verify", "--no-read-models")
