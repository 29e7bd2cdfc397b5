"""Guards that other guards hide: each test here fails when its one guard is removed.

Issue 13 found rules that the rest of the suite would not miss: the thank-you deadline
taken from the interview's local day, replay honouring ``occurred_at``, replay not
counting a thank-you to part of the panel as thanking it, and the outbox's three
duplicate guards (the atomic position, the existence filter, deterministic ids), which
mask each other.  Every test below names the guard it pins and was checked by removing
that guard alone.  Each runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from api_support import ok
from builders import PANEL, interview

from adapters.outbox import TRACKING_NAME, Dispatcher
from adapters.outbox_rows import message_rows
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.decisions import plan
from engine.policy import default_policy
from engine.replay import ReplayTarget, candidacy_histories, replay, source_for
from engine.scheduler import tick
from engine.simulation import drive
from engine.values import Actor

pytest_plugins = ["api_fixtures"]  # api, client and client_for

NEW_YORK = ZoneInfo("America/New_York")
MAYA = Actor(user="maya@example.com", workspace="agency")


def _source(app: Candidacies, database_url: str) -> Any:
    return source_for(database_url, app.recorder.events_table_name)  # type: ignore[attr-defined]


# -- the thank-you deadline: the interview's LOCAL day -----------------------------------------

# 20:00 on Tuesday 24 November in New York is 01:00 on the 25th in UTC.
EVENING_IN_NEW_YORK = ["2026-11-24T20:00:00-05:00", "2026-11-25T01:00:00Z"]
END_OF_THE_24TH = datetime(2026, 11, 24, 23, 59, 59, tzinfo=NEW_YORK)


@pytest.mark.parametrize("interviewed_at", EVENING_IN_NEW_YORK)
def test_an_evening_interview_in_new_york_is_due_thanks_by_the_end_of_its_local_day(
        candidacies: Candidacies, clock: FixedClock, client: Any, interviewed_at: str) -> None:
    """Pins the deadline taken from the interview's local day (`thank_you_deadline` of
    ``local_ordinal(interviewed_at)``): from its UTC day the deadline is a day late."""
    clock.set(datetime(2026, 11, 25, 1, 30, tzinfo=UTC))  # 20:30 in New York
    candidacy_id = candidacies.record_interview(MAYA, interview(
        format="video", interviewed_at=interviewed_at, timezone="America/New_York",
        country="US")).candidacy_id

    candidacy = candidacies.get(candidacy_id, MAYA.workspace)
    [overdue] = [a for a in plan(candidacy, candidacies.policies.of(candidacy))
                 if a.kind == "thank_you_overdue"]
    assert overdue.due_at == END_OF_THE_24TH

    # On /agenda it is due on the 24th (New York's), and overdue once the 25th begins.
    on_24th = ok(client.get("/agenda", params={"on": "2026-11-24"})).json()["items"]
    assert [(i["kind"], i["overdue"]) for i in on_24th
            if i["candidacy_id"] == candidacy_id] == [("thank_you_overdue", False)]
    assert datetime.fromisoformat(on_24th[0]["due_at"]) == END_OF_THE_24TH
    on_25th = ok(client.get("/agenda", params={"on": "2026-11-25"})).json()["items"]
    assert [(i["kind"], i["overdue"]) for i in on_25th
            if i["candidacy_id"] == candidacy_id] == [("thank_you_overdue", True)]

    # The alert falls after the deadline, not before, and not a day later.
    def alerts() -> list[tuple[str, str]]:
        return [(e.data["kind"], e.decided_by["due_at"])
                for e in candidacies.history(candidacy_id, MAYA.workspace)
                if e.type == "ReminderSent"]

    clock.set(END_OF_THE_24TH - timedelta(seconds=1))
    tick(candidacies)
    assert alerts() == []
    clock.set(datetime(2026, 11, 25, 0, 0, tzinfo=NEW_YORK))
    tick(candidacies)
    assert alerts() == [("thank_you_overdue", END_OF_THE_24TH.astimezone(UTC).isoformat())]


# -- replay: the facts as a person recorded them -----------------------------------------------


def _thanked_the_same_morning(app: Candidacies, **thank_you: Any) -> str:
    """Interviewed by PANEL at 09:00 London, the next step closed and a person's own
    thank-you (no ``decided_by``) recorded at the same moment (the clock's 10:00)."""
    candidacy_id = app.record_interview(MAYA, interview(format="video",
                                                        interviewers=PANEL)).candidacy_id
    app.record_no_hesitations(MAYA, candidacy_id)
    app.close_next_step(MAYA, candidacy_id, "a systems design interview")
    app.send_thank_you(MAYA, candidacy_id, "email", **thank_you)
    return candidacy_id


def test_replay_folds_a_reply_logged_late_at_the_moment_it_came(
        candidacies: Candidacies, clock: FixedClock, database_url: str) -> None:
    """Pins replay honouring ``occurred_at``: an advance that came two days after the
    interview, logged eight weeks later.  Folded at its recorded ``timestamp`` instead,
    the policy would nudge (and stall) through weeks in which the candidate had already
    advanced."""
    candidacy_id = _thanked_the_same_morning(candidacies)
    clock.set(datetime(2027, 1, 20, 10, 0, tzinfo=UTC))
    came = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    candidacies.receive_reply(MAYA, candidacy_id, "advanced", received_at=came)

    result = replay(_source(candidacies, database_url), [default_policy()])

    [metrics] = result.as_dict()["policies"]
    assert result.replayed == 1
    assert (metrics["nudges"], metrics["stalls"], metrics["advanced"]) == (0, 0, 1)
    interviewed = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert metrics["days_to_next_step"] == round((came - interviewed) / timedelta(days=1), 2)


def test_replay_keeps_a_thank_you_to_part_of_the_panel_short_of_the_panel(
        candidacies: Candidacies, database_url: str) -> None:
    """Pins replay's thank-you guard (``covers_panel`` false for a recorded thank-you):
    Priya was thanked, Tom was not, so the round stays at ``thanked`` (the deadline then
    passes unthanked) and no nudge may follow.  Counted as covering the panel, it would
    be ``awaiting`` and the policy would nudge."""
    _thanked_the_same_morning(candidacies, to=["Priya Raman"])
    source = _source(candidacies, database_url)

    [history] = list(candidacy_histories(source.batches()))
    target = ReplayTarget()
    drive(target, history.facts, default_policy())  # type: ignore[arg-type]
    assert target.state.stage == "thanked"
    assert target.state.thanked == ["Priya Raman"]
    assert target.state.nudges == []

    [metrics] = replay(source, [default_policy()]).as_dict()["policies"]
    assert (metrics["thank_you_misses"], metrics["nudges"], metrics["stalls"]) == (1, 0, 0)


# -- the outbox's three duplicate guards --------------------------------------------------------

LATER = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


def _due_messages(app: Candidacies, count: int) -> None:
    """``count`` candidacies, each asking for two messages: the next step's calendar
    invite (when the next step is closed) and the scheduler's thank-you."""
    for _ in range(count):
        candidacy_id = app.record_interview(MAYA, interview(format="video")).candidacy_id
        app.record_no_hesitations(MAYA, candidacy_id)
        app.close_next_step(MAYA, candidacy_id, "a systems design interview",
                            scheduled_for=datetime(2026, 12, 3, 14, 0, tzinfo=UTC))
    tick(app, LATER)


Key = tuple[str, int, str]


def _queued(app: Candidacies) -> Counter[Key]:
    """Each queued message as (candidacy, triggering version, channel): how many times."""
    return Counter((row.candidacy_id, row.summary["trigger"]["version"], row.channel)
                   for row in message_rows(app))


def _asked_for(app: Candidacies, up_to: int | None = None) -> set[Key]:
    """What the candidacy events up to notification ``up_to`` (all: None) ask for, worked
    out afresh by the outbox's routing (ids play no part in the key)."""
    dispatcher = Dispatcher(app)
    wanted: set[Key] = set()
    last = app.recorder.max_notification_id() or 0
    for notification in app.recorder.select_notifications(start=1, limit=last + 1):
        if up_to is not None and notification.id > up_to:
            break
        if notification.topic.startswith("engine.candidacy:Candidacy."):
            event = app.mapper.to_domain_event(notification)
            wanted |= {(m.candidacy_id, m.trigger["version"], m.channel)
                       for m in dispatcher.messages_for(event, LATER)}
    return wanted


def _follow_all(dispatcher: Dispatcher, bound: int = 50) -> None:
    """Follow until the log is read, failing if the follower keeps reading a page."""
    for _ in range(bound):
        if not dispatcher.follow():
            return
    pytest.fail(f"the follower was still reading pages after {bound} calls: it is stuck")


def _lose_position(app: Candidacies) -> None:
    """Forget the outbox's tracked position, as a restored or reset tracking table would."""
    # eventsourcing names it on PostgreSQL; its SQLite recorder calls it `tracking`.
    table = getattr(app.recorder, "tracking_table_name", "tracking")
    with app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute(f"DELETE FROM {table} WHERE application_name = '{TRACKING_NAME}'")
    assert app.recorder.max_tracking_id(TRACKING_NAME) is None


class _Crash(Exception):
    """The process dies."""


class _DiesAfterASave:
    """The application as a dispatcher sees it when the process is killed right after its
    first save commits: the real save, then the crash."""

    def __init__(self, app: Candidacies) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def save(self, *objects: Any, **kwargs: Any) -> None:
        self._app.save(*objects, **kwargs)
        raise _Crash("killed after a save committed")


def test_a_follower_killed_after_a_save_leaves_its_position_and_its_messages_agreeing(
        candidacies: Candidacies) -> None:
    """Pins the atomic position (`Dispatcher.follow` saves the queued messages WITH
    ``position=Tracking(...)`` in one save).  Saved apart, a kill between the two saves
    leaves messages queued past the recorded position (the existence filter would then
    hide the duplicates a re-read makes) or a position past messages never queued (lost)."""
    _due_messages(candidacies, 3)
    with pytest.raises(_Crash):
        Dispatcher(_DiesAfterASave(candidacies)).follow()  # type: ignore[arg-type]

    position = candidacies.recorder.max_tracking_id(TRACKING_NAME) or 0
    assert set(_queued(candidacies)) == _asked_for(candidacies, up_to=position)
    assert position, "the one save committed"

    # After the restart, every message is queued, once.
    _follow_all(Dispatcher(candidacies))
    assert _queued(candidacies) == Counter(_asked_for(candidacies))


def test_a_page_read_again_after_its_position_was_lost_queues_only_what_is_new(
        candidacies: Candidacies) -> None:
    """Pins the existence filter (`Dispatcher._exists`): a page read again holds messages
    already queued.  Without the filter their ids collide, the page's save fails every
    time and the follower never gets past it (nor queues the new thank-yous in it)."""
    _due_messages(candidacies, 2)
    _follow_all(Dispatcher(candidacies))
    _due_messages(candidacies, 2)  # new work, in the same page as the old once re-read
    _lose_position(candidacies)

    _follow_all(Dispatcher(candidacies))

    assert _queued(candidacies) == Counter(_asked_for(candidacies))
    assert len(_queued(candidacies)) == 8
    # It read on to the end of the log (the new messages' own notifications included).
    assert candidacies.recorder.max_tracking_id(TRACKING_NAME) == \
        candidacies.recorder.max_notification_id()


def test_following_from_the_start_again_queues_nothing_twice(candidacies: Candidacies) -> None:
    """Pins deterministic message ids (`adapters.message.message_id`, uuid5 of candidacy,
    triggering version and channel): a follower that reads the log from the start again
    recomputes the ids it queued, so the existence filter knows them.  With fresh random
    ids each message would be queued (and sent) a second time."""
    _due_messages(candidacies, 3)
    _follow_all(Dispatcher(candidacies))
    first = {row.id for row in message_rows(candidacies)}
    _lose_position(candidacies)

    _follow_all(Dispatcher(candidacies))

    assert _queued(candidacies) == Counter(_asked_for(candidacies))
    assert {row.id for row in message_rows(candidacies)} == first
