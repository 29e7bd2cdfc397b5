"""How stored records are decoded: the application's mapper, shared by everything that reads
them (the application, replay, the doctor, the outbox).

`mapper_of` makes it from an eventsourcing infrastructure factory: the library's mapper with
its JSON transcoder (plus `DateAsISO`), and the compressor and cipher the configuration names
(``COMPRESSOR_TOPIC``, ``CIPHER_TOPIC`` / ``CIPHER_KEY``, each optionally prefixed
``CLOSER_``), raising `CorruptHistory` for a record it cannot decode; a configured
``MAPPER_TOPIC`` wins.  `stored_event_mapper` makes the same one from the environment alone,
without opening a store, for replay, which reads the tables (or an export) itself.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    InfrastructureFactory,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Transcoder,
    Transcoding,
    UUIDAsHex,
)
from eventsourcing.popo import POPOFactory
from eventsourcing.utils import Environment, TopicError, get_topic, resolve_topic

from engine.errors import CorruptHistory
from engine.personal_data import Keyring, SealedAsBase64, erased_by, sealing_of

APPLICATION_NAME = "Closer"
"""The application's name, which prefixes its environment variables (``CLOSER_...``)."""


class DateAsISO(Transcoding):
    """Calendar dates (a return date, a pause's end) as ISO-8601 text."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


def transcoder_of(factory: InfrastructureFactory[Any]) -> Transcoder:
    """The application's transcoder: ``factory``'s, with, when it is the JSON one, the
    transcodings eventsourcing 9.5.6's `Application.register_transcodings` registers (UUID,
    Decimal, datetime; tests/test_replay_codec.py fails if the library's list changes) and
    Closer's (`DateAsISO`, and `SealedAsBase64` for personal data)."""
    transcoder = factory.transcoder()
    if isinstance(transcoder, JSONTranscoder):
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO(),
                            SealedAsBase64()):
            transcoder.register(transcoding)
    return transcoder


def mapper_of(factory: InfrastructureFactory[Any]) -> Mapper[UUID]:
    """The application's mapper, as ``factory``'s configuration makes it."""
    custom = factory.env.get(factory.MAPPER_TOPIC)
    return factory.mapper(transcoder=transcoder_of(factory),
                          mapper_class=None if custom else QuarantiningMapper)


def stored_event_mapper(env: Mapping[str, str] | None = None) -> Mapper[UUID]:
    """The mapper the application makes in this process (its environment, then ``env``),
    without opening a store."""
    return mapper_of(POPOFactory(Environment(APPLICATION_NAME, {**os.environ, **(env or {})})))


StateDecoder = Callable[[UUID, int, str, bytes], dict[str, Any]]


def state_decoder(mapper: Mapper[UUID]) -> StateDecoder:
    """``decoded(id, version, topic, state)``: a stored event's state as ``mapper`` decodes
    it (the instance dict of ``mapper.to_domain_event``'s event), for a reader that needs
    the data and not the event object (replay: from 1.43x to 1.25x the CPU an event of
    the replay that parsed payloads itself; docs/performance.md, "Layers by knowledge").

    The first half of eventsourcing 9.5.6's `Mapper.to_domain_event` (decrypt, decompress,
    transcode) through ``mapper``'s own cipher, compressor and transcoder; a state the
    library would upcast (``class_version``), one that fails to decode, or another mapper
    class (``MAPPER_TOPIC``) takes the library's whole path instead, so upcasts and the
    named `CorruptHistory` are the library's.  tests/test_replay_codec.py compares the two
    on plain, compressed and encrypted stores."""
    if type(mapper) not in (Mapper, QuarantiningMapper):
        return lambda uid, version, topic, state: vars(
            mapper.to_domain_event(StoredEvent(uid, version, topic, state)))
    transcode, compressor, cipher = mapper.transcoder.decode, mapper.compressor, mapper.cipher

    def decoded(uid: UUID, version: int, topic: str, state: bytes) -> dict[str, Any]:
        data: dict[str, Any] | None
        try:
            plain = cipher.decrypt(state) if cipher else state
            if compressor:
                plain = compressor.decompress(plain)
            data = transcode(plain)
        except Exception:  # noqa: BLE001 - the library's path names it (below)
            data = None
        if data is None or "class_version" in data:
            return vars(mapper.to_domain_event(StoredEvent(uid, version, topic, state)))
        keyring = getattr(mapper, "keyring", None)
        if keyring is not None:
            sealing = sealing_of(topic, data)
            if sealing is not None:
                keyring.open_state(uid, data, sealing)
        data["originator_id"] = uid
        data["originator_version"] = version
        return data

    return decoded


class QuarantiningMapper(Mapper[UUID]):
    """The library's mapper, raising `CorruptHistory` (naming the record, its log
    position when known, and why) for a stored record it cannot decode or upcast.

    Given a ``keyring`` (the application gives its own, `engine.personal_data`), it seals
    each event's personal strings with its subject's key as it stores them and opens them
    as it loads them (``"erased"`` once the key is gone); without one it stores them as
    given and reads a sealed one as ``"withheld"``."""

    keyring: Keyring | None = None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        keyring = self.keyring
        if keyring is not None:
            sealing = sealing_of(get_topic(type(domain_event)), vars(domain_event))
            if sealing is not None:
                # A copy with the sealed values: the aggregate keeps the event it applied.
                sealed = copy.copy(domain_event)
                keyring.seal_state(domain_event.originator_id, vars(sealed), sealing)
                domain_event = sealed
        return super().to_stored_event(domain_event)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        try:
            event = super().to_domain_event(stored_event)
            keyring = self.keyring
            if keyring is not None:
                state = vars(event)
                sealing = sealing_of(stored_event.topic, state)
                if sealing is not None:
                    keyring.open_state(event.originator_id, state, sealing)
                elif erased_by(stored_event.topic, state):
                    # Erased by another process, whose key this one may still hold.
                    keyring.forget(str(event.originator_id))
            return event
        except Exception as error:  # whatever the decoder raised: named, never a traceback
            raise CorruptHistory(stored_event.originator_id, stored_event.originator_version,
                                 reason(error), topic=stored_event.topic,
                                 notification_id=getattr(stored_event, "id", None),
                                 snapshot=_snapshot_topic(stored_event.topic)) from error


def _snapshot_topic(topic: str) -> bool:
    try:
        found = resolve_topic(topic)
    except TopicError:  # an unknown (or corrupt) topic: by its name
        return topic.rpartition(".")[2].rpartition(":")[2] == "Snapshot"
    return isinstance(found, type) and issubclass(found, Snapshot)


def reason(error: BaseException) -> str:
    """The decoding error in one line: the innermost cause (the mapper's own message
    repeats the record's topic, id and version)."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = " ".join(str(error).split()) or "no detail"
    return f"{type(error).__name__}: {text}"[:300]
