"""The calendar adapter: an RFC 5545 invite, parsed back, written out or emailed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import icalendar
import pytest
from adapters_fixtures import SmtpServer, make_context, smtp_server

from adapters.calendar import CalendarAdapter

__all__ = ["smtp_server"]  # a fixture used by name


def parsed_event(ics: bytes) -> icalendar.Event:
    calendar = icalendar.Calendar.from_ical(ics)
    [event] = calendar.walk("VEVENT")
    return event


def test_the_invite_parses_back_with_a_stable_uid_and_a_zoned_start(tmp_path: Path) -> None:
    adapter = CalendarAdapter(directory=tmp_path)
    context = make_context("next_step_invite", channel="calendar")
    message = adapter.render(context)
    [attachment] = message.attachments
    assert attachment.mimetype == "text/calendar" and attachment.filename == "invite.ics"

    calendar = icalendar.Calendar.from_ical(attachment.content)
    assert str(calendar["version"]) == "2.0" and str(calendar["method"]) == "PUBLISH"
    assert [str(tz["tzid"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/London"]
    event = parsed_event(attachment.content)
    assert str(event["uid"]) == f"{context.message_id}@closer.local"
    start = event.decoded("dtstart")
    assert start.astimezone(UTC) == datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
    assert event["dtstart"].params["TZID"] == "Europe/London"
    assert (event.decoded("dtend") - start).total_seconds() == 45 * 60
    assert str(event["summary"]) == ("Northwind Labs: a systems design interview with the "
                                     "platform team (Senior Backend Engineer)")
    assert str(event["location"]) == "Northwind Labs, 5 Fleet Street"
    attendees = {str(a): a.params["CN"] for a in event["attendee"]}
    assert attendees == {"mailto:maya@example.org": "Maya Castellanos",
                         "mailto:sarah.whitfield@northwind.example": "Sarah Whitfield",
                         "mailto:john.okafor@northwind.example": "John Okafor"}
    assert "Sarah Whitfield, VP Engineering" in str(event["description"])


def test_a_resent_invite_is_byte_for_byte_the_same(tmp_path: Path) -> None:
    adapter = CalendarAdapter(directory=tmp_path)
    first = adapter.render(make_context("next_step_invite")).attachments[0].content
    assert first == adapter.render(make_context("next_step_invite")).attachments[0].content


def test_the_invite_is_written_to_the_folder(tmp_path: Path) -> None:
    adapter = CalendarAdapter(directory=tmp_path)
    message = adapter.render(make_context("next_step_invite"))
    receipt = adapter.deliver(message)
    written = Path(receipt.detail["file"])
    assert written.name == f"{message.message_id}.ics"
    assert written.read_bytes() == message.attachments[0].content


def test_the_invite_can_be_emailed_to_the_candidate(smtp_server: SmtpServer) -> None:
    adapter = CalendarAdapter(smtp={"host": smtp_server.host, "port": smtp_server.port,
                                    "starttls": False})
    context = make_context("next_step_invite", channel="calendar")
    adapter.deliver(adapter.render(context))
    [received] = smtp_server.sink.received
    assert received.rcpt_tos == ["maya@example.org"]
    assert received.message["Message-ID"] == f"<{context.message_id}@closer.local>"
    [part] = [p for p in received.message.iter_attachments()]
    assert part.get_content_type() == "text/calendar"
    event = parsed_event(part.get_content().encode() if isinstance(part.get_content(), str)
                         else part.get_content())
    assert str(event["uid"]) == f"{context.message_id}@closer.local"


def test_the_calendar_channel_needs_exactly_one_destination(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either"):
        CalendarAdapter()
    with pytest.raises(ValueError, match="either"):
        CalendarAdapter(directory=tmp_path, smtp={"host": "127.0.0.1"})
