"""Replay reads stored events through the application's mapper (`engine.codec`), so it
answers the same whether the store's payloads are plain JSON, compressed with the
library's `ZlibCompressor`, or encrypted with its `AESCipher` (both configured as the
application is: ``COMPRESSOR_TOPIC``, ``CIPHER_TOPIC`` / ``CIPHER_KEY``).  And the one
step replay takes around the library's mapper (`state_decoder`) gives what the
library's own `to_domain_event` gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from eventsourcing.application import Application
from eventsourcing.cipher import AESCipher
from eventsourcing.persistence import StoredEvent
from typer.testing import CliRunner

from api.cli import app as cli
from api.settings import get_settings
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.codec import state_decoder, stored_event_mapper
from engine.errors import CorruptHistory
from engine.policy import default_policy
from engine.replay import SQLiteSource, agreement, replay
from engine.simulation import simulate
from engine.store import eventsourcing_env

SETTINGS: dict[str, dict[str, str]] = {
    "plain": {},
    "compressed": {"COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor"},
    "encrypted": {"CIPHER_TOPIC": "eventsourcing.cipher:AESCipher",
                  "CIPHER_KEY": AESCipher.create_key(16),
                  "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor"},
}
COUNT = 40
UNTIL = datetime(2027, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same simulated candidacies, written by the application under each setting."""
    paths = {}
    for name, settings in SETTINGS.items():
        path = tmp_path_factory.mktemp(name) / "closer.db"
        app = Candidacies({**eventsourcing_env(f"sqlite:///{path}"), **settings},
                          clock=FixedClock(UNTIL))
        simulate(app, COUNT, seed=3)
        app.close()
        paths[name] = path
    return paths


def _rows(path: Path) -> list[tuple[Any, int, str, bytes]]:
    return [row for batch in SQLiteSource(path).batches() for row in batch]


def _result(path: Path, settings: dict[str, str]) -> dict[str, Any]:
    result = replay(SQLiteSource(path), [default_policy()],
                    mapper=stored_event_mapper(settings), until=UNTIL).as_dict()
    del result["seconds"]
    return result


def test_the_stores_payloads_are_compressed_and_encrypted(stores: dict[str, Path]) -> None:
    states = {name: _rows(path)[0][3] for name, path in stores.items()}
    assert orjson.loads(states["plain"])["candidate"]
    for name in ("compressed", "encrypted"):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(states[name])
    assert states["compressed"] != states["encrypted"]


def test_replay_answers_the_same_whatever_the_payloads_settings(
        stores: dict[str, Path]) -> None:
    plain = _result(stores["plain"], {})
    assert plain["replayed"] == COUNT and plain["events"] > COUNT * 5
    for name in ("compressed", "encrypted"):
        assert _result(stores[name], SETTINGS[name]) == plain, name


def test_replay_takes_the_settings_from_the_environment_as_the_application_does(
        stores: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    plain = replay(SQLiteSource(stores["plain"]), [default_policy()], until=UNTIL).as_dict()
    with pytest.raises(CorruptHistory):  # named, never garbage: the payload is zlib's
        replay(SQLiteSource(stores["compressed"]), [default_policy()], until=UNTIL)
    monkeypatch.setenv("CLOSER_COMPRESSOR_TOPIC", SETTINGS["compressed"]["COMPRESSOR_TOPIC"])
    compressed = replay(SQLiteSource(stores["compressed"]), [default_policy()],
                        until=UNTIL).as_dict()
    assert {**compressed, "seconds": 0} == {**plain, "seconds": 0}


def test_the_recorded_decisions_agree_whatever_the_settings(stores: dict[str, Path]) -> None:
    reports = {name: agreement(SQLiteSource(path), lambda _: default_policy(), until=UNTIL,
                               mapper=stored_event_mapper(SETTINGS[name]))
               for name, path in stores.items()}
    assert reports["plain"].candidacies == COUNT
    for name in ("compressed", "encrypted"):
        assert reports[name] == reports["plain"], name


def test_replay_check_on_the_cli_reads_a_compressed_store(
        stores: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {}
    for name in ("plain", "compressed"):
        monkeypatch.setenv("CLOSER_DATABASE_URL", f"sqlite:///{stores[name]}")
        monkeypatch.setenv("CLOSER_LOG_LEVEL", "error")
        for key, value in SETTINGS[name].items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        try:
            run = CliRunner().invoke(cli, ["replay", "--check", "--json", "--until",
                                           UNTIL.isoformat()])
        finally:
            get_settings.cache_clear()
        assert run.exit_code in (0, 1), run.output
        answers[name] = json.loads(run.output)
    assert answers["compressed"] == answers["plain"]
    assert answers["plain"]["candidacies"] == COUNT


def _both_ways(stores: dict[str, Path]) -> Iterator[tuple[Any, Any]]:
    """Every stored event of each store, through `state_decoder` and the library's
    `to_domain_event`, pairwise."""
    for name, path in stores.items():
        mapper = stored_event_mapper(SETTINGS[name])
        ours = state_decoder(mapper)
        for uid, version, topic, state in _rows(path):
            stored = StoredEvent(UUID(uid), version, topic, state)
            yield ours(UUID(uid), version, topic, state), vars(mapper.to_domain_event(stored))


def test_the_state_decoder_gives_what_the_librarys_mapper_gives(
        stores: dict[str, Path]) -> None:
    count = 0
    for ours, theirs in _both_ways(stores):
        assert ours == theirs
        count += 1
    assert count > COUNT * 3 * 5


def test_the_state_decoder_reads_a_sound_record_without_the_librarys_whole_path(
        stores: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # Its receipt (docs/performance.md) holds only if sound records take the short path.
    for name, path in stores.items():
        mapper = stored_event_mapper(SETTINGS[name])
        monkeypatch.setattr(mapper, "to_domain_event", _not_called)
        decoded = state_decoder(mapper)
        for uid, version, topic, state in _rows(path):
            decoded(UUID(uid), version, topic, state)


def _not_called(*_: Any) -> Any:
    raise AssertionError("the library's whole path, for a sound record")


def test_the_state_decoder_names_a_record_it_cannot_read_as_the_library_does(
        stores: dict[str, Path]) -> None:
    mapper = stored_event_mapper(SETTINGS["compressed"])
    uid, version, topic, state = _rows(stores["compressed"])[0]
    with pytest.raises(CorruptHistory) as ours:
        state_decoder(mapper)(UUID(uid), version, topic, state[:-3])
    with pytest.raises(CorruptHistory) as theirs:
        mapper.to_domain_event(StoredEvent(UUID(uid), version, topic, state[:-3]))
    assert str(ours.value) == str(theirs.value)


def test_an_upcast_state_takes_the_librarys_path(stores: dict[str, Path]) -> None:
    mapper = stored_event_mapper()
    uid, version, topic, state = _rows(stores["plain"])[0]
    versioned = orjson.dumps({**orjson.loads(state), "class_version": 1})
    decoded = state_decoder(mapper)(UUID(uid), version, topic, versioned)
    assert "class_version" not in decoded  # the library's upcast loop popped it
    assert decoded == vars(mapper.to_domain_event(StoredEvent(UUID(uid), version, topic,
                                                              versioned)))


def test_the_transcoder_registers_every_transcoding_the_librarys_application_does() -> None:
    library = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    theirs = library.mapper.transcoder.names  # type: ignore[attr-defined]
    ours = stored_event_mapper().transcoder.names  # type: ignore[attr-defined]
    assert {n: type(t) for n, t in theirs.items()} == \
        {n: type(t) for n, t in ours.items() if n in theirs}
    assert set(ours) - set(theirs) == {"date_iso", "sealed"}
