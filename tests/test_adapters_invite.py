"""The calendar adapter: an RFC 5545 invite, parsed back, written out or emailed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
import vobject
from adapters_fixtures import SmtpServer, make_context, smtp_server

from adapters.invite import CalendarAdapter
from adapters.vtimezone import Onset, ZoneRule

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


# The parity of three parsers.  Each reads the invite as sent; then, with the TZID renamed to
# one no time zone database knows, each must read its times from the VTIMEZONE alone.  (vobject
# keeps the first VTIMEZONE it meets per TZID for the life of the process: a fresh name per
# case keeps each case honest.)
PARITY_ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "America/Sao_Paulo",
                "Asia/Tokyo", "Asia/Jerusalem"]
PARITY_MONTHS = [(2027, 1), (2027, 7), (2040, 1), (2040, 7)]


def invite_at(local: datetime) -> bytes:
    assert isinstance(local.tzinfo, ZoneInfo)
    context = make_context("next_step_invite", channel="calendar", timezone=local.tzinfo.key,
                           next_step={"description": "a systems design interview",
                                      "scheduled_for": local, "duration_minutes": 45})
    return CalendarAdapter(directory=".").render(context).attachments[0].content


def renamed(ics: bytes, tzid: str, new: str) -> bytes:
    return ics.replace(f"TZID:{tzid}".encode(), f"TZID:{new}".encode()).replace(
        f"TZID={tzid}:".encode(), f"TZID={new}:".encode())


def instants(ics: bytes) -> dict[str, tuple[datetime, datetime]]:
    """The event's start and end in UTC as each parser reads them."""
    [by_icalendar] = icalendar.Calendar.from_ical(ics).walk("VEVENT")
    by_vobject = vobject.readOne(ics.decode()).vevent
    [by_recurrence] = recurring_ical_events.of(icalendar.Calendar.from_ical(ics)).between(
        date(2000, 1, 1), date(2100, 1, 1))
    read = {"icalendar": (by_icalendar.decoded("dtstart"), by_icalendar.decoded("dtend")),
            "vobject": (by_vobject.dtstart.value, by_vobject.dtend.value),
            "recurring-ical-events": (by_recurrence.decoded("dtstart"),
                                      by_recurrence.decoded("dtend"))}
    for parser, (start, end) in read.items():
        assert start.tzinfo is not None and end.tzinfo is not None, parser  # never floating
    return {parser: (start.astimezone(UTC), end.astimezone(UTC))
            for parser, (start, end) in read.items()}


@pytest.mark.parametrize(("year", "month"), PARITY_MONTHS)
@pytest.mark.parametrize("tzid", PARITY_ZONES)
def test_icalendar_vobject_and_recurring_ical_events_read_the_same_instant(
        tzid: str, year: int, month: int) -> None:
    local = datetime(year, month, 15, 14, 0, tzinfo=ZoneInfo(tzid))
    expected = (local.astimezone(UTC), local.astimezone(UTC) + timedelta(minutes=45))
    ics = invite_at(local)
    assert [str(tz["tzid"]) for tz in icalendar.Calendar.from_ical(ics).walk("VTIMEZONE")] == [
        tzid]
    assert instants(ics) == dict.fromkeys(instants(ics), expected)
    own_zone = renamed(ics, tzid, f"Closer-Test/{tzid}/{year}-{month:02}")
    assert instants(own_zone) == dict.fromkeys(instants(own_zone), expected)


def vtimezone_of(ics: bytes) -> icalendar.Timezone:
    [timezone] = icalendar.Calendar.from_ical(ics).walk("VTIMEZONE")
    return timezone


@pytest.mark.parametrize(("tzid", "since"), [("America/New_York", 2007),
                                              ("Europe/London", 1996),
                                              ("Australia/Sydney", 2008)])
def test_a_zone_with_summer_time_repeats_its_two_changes_every_year_without_end(
        tzid: str, since: int) -> None:
    timezone = vtimezone_of(invite_at(datetime(2027, 7, 15, 14, 0, tzinfo=ZoneInfo(tzid))))
    assert sorted(part.name for part in timezone.subcomponents) == ["DAYLIGHT", "STANDARD"]
    for part in timezone.subcomponents:
        assert "RDATE" not in part and "UNTIL" not in part["RRULE"]
        assert part.decoded("dtstart").year == since  # the year the zone's current rule began
    # icalendar's own reading of the VTIMEZONE (not its tz database) agrees with zoneinfo.
    tz = timezone.to_tz(lookup_tzid=False)
    for moment in (datetime(2040, 1, 15, 12), datetime(2040, 7, 15, 12),
                   datetime(2099, 7, 15, 12)):
        assert moment.replace(tzinfo=tz).utcoffset() == \
            moment.replace(tzinfo=ZoneInfo(tzid)).utcoffset()


@pytest.mark.parametrize(("tzid", "offset", "since"), [("Asia/Tokyo", "+0900", 1970),
                                                       ("America/Sao_Paulo", "-0300", 2020)])
def test_a_zone_without_summer_time_gets_a_single_standard(tzid: str, offset: str,
                                                           since: int) -> None:
    timezone = vtimezone_of(invite_at(datetime(2027, 7, 15, 14, 0, tzinfo=ZoneInfo(tzid))))
    [standard] = timezone.subcomponents
    assert standard.name == "STANDARD" and "RRULE" not in standard and "RDATE" not in standard
    assert standard["tzoffsetfrom"].to_ical() == standard["tzoffsetto"].to_ical() == offset
    # São Paulo kept summer time until February 2019: the single STANDARD starts after it.
    assert standard.decoded("dtstart") == datetime(since, 1, 1)


@pytest.mark.parametrize(("tzid", "moment"), [
    # Cairo leaves summer time at 24:00 after October's last Thursday, which may be the 1st
    # of November: no BYMONTH can say that.
    ("Africa/Cairo", datetime(2027, 1, 15, 14, 0)), ("Africa/Cairo", datetime(2027, 7, 15, 14, 0)),
    # Morocco and Gaza change their clocks for Ramadan, a month that moves every year.
    ("Africa/Casablanca", datetime(2027, 2, 20, 14, 0)),
    ("Africa/Casablanca", datetime(2027, 7, 15, 14, 0)),
    ("Asia/Gaza", datetime(2027, 7, 15, 14, 0))])
def test_a_zone_no_rrule_can_say_gets_a_short_list_of_changes_around_the_event(
        tzid: str, moment: datetime) -> None:
    local = moment.replace(tzinfo=ZoneInfo(tzid))
    ics = invite_at(local)
    timezone = vtimezone_of(ics)
    assert any("RDATE" in part for part in timezone.subcomponents)
    changes = [part.decoded("dtstart") for part in timezone.subcomponents]
    changes += [when.dt for part in timezone.subcomponents
                for rdates in ([part["RDATE"]] if "RDATE" in part else [])
                for when in rdates.dts]
    assert all(2026 <= when.year <= 2028 for when in changes)
    own_zone = renamed(ics, tzid, f"Closer-Test/{tzid}/{moment:%Y-%m}")
    assert {start for start, _ in instants(own_zone).values()} == {local.astimezone(UTC)}


def test_icalendar_from_tzinfo_still_misses_moroccos_ramadan_hour() -> None:
    # Why adapters.vtimezone lists changes itself: icalendar 7.3's from_tzinfo skips the
    # 2027 Ramadan change (7 February to 14 March). When this fails, it no longer does.
    listed = icalendar.Timezone.from_tzid("Africa/Casablanca", first_date=date(2026, 1, 1),
                                          last_date=date(2029, 1, 1))
    during = datetime(2027, 2, 20, 12, 0)
    assert during.replace(tzinfo=listed.to_tz(lookup_tzid=False)).utcoffset() != \
        during.replace(tzinfo=ZoneInfo("Africa/Casablanca")).utcoffset()


def test_a_change_at_a_shifted_hour_becomes_a_weekday_in_a_range_of_month_days() -> None:
    # Greenland's 22:00 UTC change: the Saturday before March's last Sunday, at 23:00.
    rule = ZoneRule.parse("<-02>2<-01>,M3.5.0/-1,M10.5.0/0")
    assert rule is not None and rule.to_dst == Onset(3, 5, 0, timedelta(hours=-1))
    assert rule.to_dst.rrule() == {"FREQ": "YEARLY", "BYMONTH": 3,
                                   "BYMONTHDAY": [-8, -7, -6, -5, -4, -3, -2], "BYDAY": "SA"}
    assert rule.to_dst.local(2027) == datetime(2027, 3, 27, 23, 0)
    # Cairo's "24:00 after the last Thursday" can spill into November: no RRULE for it.
    cairo = ZoneRule.parse("EET-2EEST,M4.5.5/0,M10.5.4/24")
    assert cairo is not None and cairo.to_std is not None and cairo.to_std.rrule() is None
    assert cairo.to_std.local(2030) == datetime(2030, 11, 1, 0, 0)
