"""Calendar maths: working days, public holidays, send times across zones and DST."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine import work_calendar as calendar_module
from engine.policy import default_policy
from engine.work_calendar import (
    CalendarError,
    WorkCalendar,
    allowed_send_intervals,
    is_send_time,
    next_send_time,
    work_calendar,
)

NEW_YORK = "America/New_York"
LONDON = "Europe/London"
EVERY_DAY = (0, 1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class Hours:
    """A daily time range, as the policy's send window and quiet hours provide."""

    start: time
    end: time


OFFICE = Hours(time(9), time(17))
NIGHT = Hours(time(20), time(8))
US = work_calendar("US")
ANY_DAY = work_calendar(None, working_days=EVERY_DAY)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


# ---------------------------------------------------------------- working days


def test_weekends_are_not_working_days() -> None:
    assert US.is_working_day(date(2026, 5, 8))
    assert not US.is_working_day(date(2026, 5, 9))
    assert not US.is_working_day(date(2026, 5, 10))


def test_friday_plus_one_business_day_is_monday() -> None:
    assert US.add_business_days(date(2026, 5, 8), 1) == date(2026, 5, 11)


def test_us_thanksgiving_is_skipped() -> None:
    assert not US.is_working_day(date(2026, 11, 26))
    assert US.add_business_days(date(2026, 11, 25), 1) == date(2026, 11, 27)


def test_christmas_is_skipped() -> None:
    assert not US.is_working_day(date(2026, 12, 25))
    assert US.add_business_days(date(2026, 12, 24), 1) == date(2026, 12, 28)


def test_observed_holiday_is_skipped_when_the_day_falls_on_a_weekend() -> None:
    # Independence Day 2026 is a Saturday, observed on Friday 3 July.
    assert not US.is_working_day(date(2026, 7, 3))
    assert US.add_business_days(date(2026, 7, 2), 1) == date(2026, 7, 6)


def test_brazilian_national_holiday_tiradentes_is_skipped() -> None:
    brazil = work_calendar("BR")
    assert not brazil.is_working_day(date(2026, 4, 21))
    assert brazil.add_business_days(date(2026, 4, 20), 1) == date(2026, 4, 22)


def test_sao_paulo_state_holiday_only_counts_in_sao_paulo() -> None:
    assert not work_calendar("BR", "SP").is_working_day(date(2026, 7, 9))
    assert work_calendar("BR").is_working_day(date(2026, 7, 9))


def test_holidays_are_ignored_when_not_honoured() -> None:
    ignoring = work_calendar("US", honour_holidays=False)
    assert ignoring.is_working_day(date(2026, 11, 26))


def test_a_custom_working_week_is_respected() -> None:
    sunday_to_thursday = WorkCalendar(None, working_days=(6, 0, 1, 2, 3))
    assert sunday_to_thursday.is_working_day(date(2026, 5, 10))
    assert not sunday_to_thursday.is_working_day(date(2026, 5, 8))
    assert sunday_to_thursday.add_business_days(date(2026, 5, 7), 1) == date(2026, 5, 10)


def test_zero_business_days_rolls_a_weekend_forward_to_monday() -> None:
    assert US.add_business_days(date(2026, 5, 9), 0) == date(2026, 5, 11)
    assert US.add_business_days(date(2026, 5, 8), 0) == date(2026, 5, 8)


def test_negative_business_days_count_backwards() -> None:
    assert US.add_business_days(date(2026, 11, 30), -2) == date(2026, 11, 25)


def test_adding_business_days_keeps_the_time_of_day() -> None:
    start = datetime(2026, 11, 25, 15, 30, tzinfo=ZoneInfo(NEW_YORK))
    expected = datetime(2026, 11, 27, 15, 30, tzinfo=ZoneInfo(NEW_YORK))
    assert US.add_business_days(start, 1) == expected


def test_business_days_between_skips_weekends_and_holidays() -> None:
    assert US.business_days_between(date(2026, 11, 20), date(2026, 11, 30)) == 5
    assert US.business_days_between(date(2026, 11, 30), date(2026, 11, 20)) == -5
    assert US.business_days_between(date(2026, 5, 8), date(2026, 5, 8)) == 0
    # 261 weekdays from 2 Jan 2026 to 1 Jan 2027, less 11 federal holidays on weekdays.
    assert US.business_days_between(date(2026, 1, 1), date(2027, 1, 1)) == 250


def test_unknown_country_is_named_in_the_error() -> None:
    with pytest.raises(CalendarError, match="unknown country code 'XX'"):
        work_calendar("XX")


def test_unknown_subdivision_is_named_in_the_error() -> None:
    with pytest.raises(CalendarError, match="unknown subdivision 'ZZ' of country US"):
        work_calendar("US", "ZZ")


def test_an_empty_working_week_is_refused() -> None:
    with pytest.raises(CalendarError, match="at least one working day"):
        WorkCalendar("US", working_days=())


def test_calendars_are_shared_and_codes_case_insensitive() -> None:
    assert work_calendar("br", "sp") is work_calendar("BR", "SP")


# ---------------------------------------------------------------- send times


def test_a_moment_inside_the_window_is_kept() -> None:
    moment = utc("2026-05-06T14:00:00.250000")
    assert next_send_time(moment, NEW_YORK, OFFICE, NIGHT, US) == moment


def test_after_hours_waits_for_the_next_morning_in_the_recipients_zone() -> None:
    sent = next_send_time(utc("2026-05-06T22:00:00"), NEW_YORK, OFFICE, NIGHT, US)
    assert sent == utc("2026-05-07T13:00:00")
    assert local(sent, NEW_YORK).hour == 9


def test_same_moment_lands_differently_for_recipients_in_different_zones() -> None:
    moment = utc("2026-05-06T18:00:00")
    assert next_send_time(moment, LONDON, OFFICE, NIGHT, work_calendar("GB")) == utc(
        "2026-05-07T08:00:00"
    )
    assert next_send_time(moment, NEW_YORK, OFFICE, NIGHT, US) == moment
    assert next_send_time(moment, "Asia/Tokyo", OFFICE, NIGHT, work_calendar("JP")) == utc(
        "2026-05-07T00:00:00"
    )


def test_friday_evening_waits_for_monday_morning() -> None:
    assert next_send_time(utc("2026-05-08T22:00:00"), NEW_YORK, OFFICE, NIGHT, US) == utc(
        "2026-05-11T13:00:00"
    )


def test_thanksgiving_is_skipped_for_sending() -> None:
    assert next_send_time(utc("2026-11-25T23:00:00"), NEW_YORK, OFFICE, NIGHT, US) == utc(
        "2026-11-27T14:00:00"
    )


def test_spring_forward_weekend_new_york_monday_opens_at_nine_edt() -> None:
    sent = next_send_time(utc("2026-03-06T23:00:00"), NEW_YORK, OFFICE, NIGHT, US)
    assert sent == utc("2026-03-09T13:00:00")
    assert local(sent, NEW_YORK).utcoffset() == timedelta(hours=-4)


def test_fall_back_weekend_new_york_monday_opens_at_nine_est() -> None:
    sent = next_send_time(utc("2026-10-30T21:30:00"), NEW_YORK, OFFICE, NIGHT, US)
    assert sent == utc("2026-11-02T14:00:00")


def test_on_the_spring_forward_day_nine_am_is_edt() -> None:
    sent = next_send_time(utc("2026-03-08T05:00:00"), NEW_YORK, OFFICE, None, ANY_DAY)
    assert sent == utc("2026-03-08T13:00:00")


def test_window_opening_inside_the_skipped_hour_opens_at_the_transition() -> None:
    # 02:30 does not exist on 2026-03-08 in New York: clocks jump from 02:00 EST to 03:00 EDT.
    window = Hours(time(2, 30), time(5))
    sent = next_send_time(utc("2026-03-08T06:00:00"), NEW_YORK, window, None, ANY_DAY)
    assert sent == utc("2026-03-08T07:00:00")
    assert local(sent, NEW_YORK).time() == time(3)


def test_repeated_hour_on_fall_back_day_is_judged_by_its_wall_time() -> None:
    window = Hours(time(1, 30), time(2))
    first = next_send_time(utc("2026-11-01T04:00:00"), NEW_YORK, window, None, ANY_DAY)
    assert first == utc("2026-11-01T05:30:00")  # 01:30 EDT
    # 01:10 EST (second pass through 01:xx) waits for 01:30 EST.
    second = next_send_time(utc("2026-11-01T06:10:00"), NEW_YORK, window, None, ANY_DAY)
    assert second == utc("2026-11-01T06:30:00")


def test_london_spring_forward_window_inside_the_gap_opens_at_the_transition() -> None:
    window = Hours(time(1, 30), time(3))
    sent = next_send_time(utc("2026-03-29T00:30:00"), LONDON, window, None, ANY_DAY)
    assert sent == utc("2026-03-29T01:00:00")
    assert local(sent, LONDON).time() == time(2)


def test_london_after_spring_forward_nine_am_is_bst() -> None:
    sent = next_send_time(utc("2026-03-27T17:30:00"), LONDON, OFFICE, NIGHT, work_calendar("GB"))
    assert sent == utc("2026-03-30T08:00:00")


def test_quiet_hours_cut_into_a_wide_send_window() -> None:
    wide = Hours(time(6), time(22))
    assert allowed_send_intervals(wide, NIGHT) == ((8 * 3600, 20 * 3600),)
    sent = next_send_time(utc("2026-05-06T10:30:00"), NEW_YORK, wide, NIGHT, US)
    assert local(sent, NEW_YORK).time() == time(8)


def test_quiet_hours_in_the_middle_split_the_window() -> None:
    lunch = Hours(time(12), time(13))
    assert allowed_send_intervals(OFFICE, lunch) == ((9 * 3600, 12 * 3600), (13 * 3600, 17 * 3600))
    sent = next_send_time(utc("2026-05-06T16:30:00"), NEW_YORK, OFFICE, lunch, US)
    assert local(sent, NEW_YORK).time() == time(13)


def test_window_inside_quiet_hours_cannot_send() -> None:
    with pytest.raises(CalendarError, match="entirely inside the quiet hours"):
        next_send_time(utc("2026-05-06T10:00:00"), NEW_YORK, OFFICE, Hours(time(8), time(18)), US)


def test_naive_moments_are_refused() -> None:
    with pytest.raises(CalendarError, match="no time zone offset"):
        next_send_time(datetime(2026, 5, 6, 10), NEW_YORK, OFFICE, NIGHT, US)


def test_unknown_time_zone_is_named() -> None:
    with pytest.raises(CalendarError, match="unknown time zone 'Mars/Olympus'"):
        next_send_time(utc("2026-05-06T10:00:00"), "Mars/Olympus", OFFICE, NIGHT, US)


def test_policy_sections_plug_straight_into_send_time_maths() -> None:
    policy = default_policy()
    sent = next_send_time(
        utc("2026-11-25T23:00:00"), NEW_YORK, policy.send_window, policy.quiet_hours,
        policy.work_calendar("US"),
    )
    assert sent == utc("2026-11-27T14:00:00")


# ---------------------------------------------------------------- properties


ZONES = [NEW_YORK, LONDON, "Europe/Berlin", "America/Sao_Paulo", "Australia/Sydney",
         "Asia/Kolkata", "Pacific/Chatham", "America/Santiago", "UTC"]
COUNTRIES = [None, "US", "GB", "BR", "DE", "AU"]

dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2032, 12, 31))
working_weeks = st.sets(st.integers(0, 6), min_size=1).map(lambda days: tuple(sorted(days)))
calendars = st.builds(work_calendar, st.sampled_from(COUNTRIES), st.none(), working_weeks)
moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
clock_times = st.times().map(lambda t: t.replace(microsecond=0))
send_windows = st.tuples(clock_times, clock_times).filter(lambda w: w[0] < w[1])
quiet_spans = st.none() | st.tuples(clock_times, clock_times).filter(lambda q: q[0] != q[1])


@settings(deadline=None)
@given(calendar=calendars, start=dates, n=st.integers(-40, 40))
def test_add_business_days_always_lands_on_a_working_day(
    calendar: WorkCalendar, start: date, n: int
) -> None:
    landed = calendar.add_business_days(start, n)
    assert calendar.is_working_day(landed)
    assert (landed > start) if n > 0 else (landed < start) if n < 0 else (landed >= start)


def naive_add_business_days(calendar: WorkCalendar, start: date, n: int) -> date:
    """The definition, one day at a time: what the bisection must reproduce."""
    day = start
    if n == 0:
        while not calendar.is_working_day(day):
            day += timedelta(days=1)
        return day
    step = timedelta(days=1 if n > 0 else -1)
    remaining = abs(n)
    while remaining:
        day += step
        remaining -= calendar.is_working_day(day)
    return day


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=dates, n=st.integers(-400, 400))
def test_add_business_days_equals_stepping_day_by_day(
    calendar: WorkCalendar, start: date, n: int
) -> None:
    assert calendar.add_business_days(start, n) == naive_add_business_days(calendar, start, n)


@pytest.mark.parametrize("country", ["US", "GB", "BR", "DE"])
def test_add_business_days_across_new_year_holidays_equals_stepping(country: str) -> None:
    calendar = work_calendar(country)
    for offset in range(-12, 12):
        start = date(2026, 1, 1) + timedelta(days=offset)
        for n in (-30, -5, -1, 0, 1, 5, 30, 260):
            assert calendar.add_business_days(start, n) == naive_add_business_days(
                calendar, start, n), (start, n)


@settings(deadline=None)
@given(calendar=calendars, start=dates, n=st.integers(0, 40))
def test_business_days_between_inverts_add_business_days(
    calendar: WorkCalendar, start: date, n: int
) -> None:
    landed = calendar.add_business_days(start, n)
    expected = n if n > 0 or calendar.is_working_day(start) else 1
    assert calendar.business_days_between(start, landed) == expected


@settings(deadline=None)
@given(calendar=calendars, a=dates, b=dates)
def test_business_days_between_matches_counting_day_by_day(
    calendar: WorkCalendar, a: date, b: date
) -> None:
    assume(abs((b - a).days) < 120)
    low, high = min(a, b), max(a, b)
    counted = sum(
        calendar.is_working_day(low + timedelta(days=i)) for i in range(1, (high - low).days + 1)
    )
    assert calendar.business_days_between(a, b) == (counted if b >= a else -counted)


def day_by_day_send_time(moment: datetime, zone: str, send_window: Hours,
                         quiet_hours: Hours | None, calendar: WorkCalendar) -> datetime:
    """`next_send_time` as first written: each local day worked out from scratch."""
    tz = ZoneInfo(zone)
    intervals = allowed_send_intervals(send_window, quiet_hours)
    utc_moment = moment.astimezone(UTC)
    whole_ts = int(utc_moment.replace(microsecond=0).timestamp())
    day = utc_moment.astimezone(tz).date()
    for _ in range(400):
        if calendar.is_working_day(day):
            found = calendar_module._earliest_on_day(tz, day, whole_ts, intervals)
            if found is not None:
                return utc_moment if found == whole_ts else datetime.fromtimestamp(found, UTC)
        day += timedelta(days=1)
    raise AssertionError("no sending moment")


def sendable_hours(window: tuple[time, time],
                   quiet: tuple[time, time] | None) -> tuple[Hours, Hours | None]:
    """A drawn send window and quiet hours, the example skipped when nothing is left."""
    send_window = Hours(*window)
    quiet_hours = Hours(*quiet) if quiet else None
    assume(allowed_send_intervals(send_window, quiet_hours))
    return send_window, quiet_hours


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31),
                        timezones=st.just(UTC)),
    zone=st.sampled_from(ZONES),
    window=send_windows,
    quiet=quiet_spans,
    calendar=calendars,
)
def test_send_schedule_equals_working_each_day_out_afresh(
    moment: datetime, zone: str, window: tuple[time, time], quiet: tuple[time, time] | None,
    calendar: WorkCalendar,
) -> None:
    send_window, quiet_hours = sendable_hours(window, quiet)
    expected = day_by_day_send_time(moment, zone, send_window, quiet_hours, calendar)
    assert next_send_time(moment, zone, send_window, quiet_hours, calendar) == expected
    # Asked again (the day's spans now remembered) and from another offset: the same.
    assert next_send_time(moment, zone, send_window, quiet_hours, calendar) == expected
    elsewhere = moment.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert next_send_time(elsewhere, zone, send_window, quiet_hours, calendar) == expected


@pytest.mark.parametrize("zone", [NEW_YORK, LONDON, "Australia/Sydney", "Pacific/Chatham"])
def test_send_schedule_equals_day_by_day_every_half_hour_around_dst(zone: str) -> None:
    for start in ("2026-03-06", "2026-03-27", "2026-04-03", "2026-09-25", "2026-10-23",
                  "2026-10-30"):
        moment = utc(f"{start}T00:00:00")
        for _ in range(12 * 48):
            assert next_send_time(moment, zone, OFFICE, NIGHT, US) == day_by_day_send_time(
                moment, zone, OFFICE, NIGHT, US), moment
            moment += timedelta(minutes=30)


@settings(max_examples=300, deadline=None)
@given(
    moment=moments,
    zone=st.sampled_from(ZONES),
    window=send_windows,
    quiet=quiet_spans,
    calendar=calendars,
)
def test_next_send_time_is_the_earliest_allowed_moment_at_or_after_the_input(
    moment: datetime,
    zone: str,
    window: tuple[time, time],
    quiet: tuple[time, time] | None,
    calendar: WorkCalendar,
) -> None:
    send_window, quiet_hours = sendable_hours(window, quiet)
    sent = next_send_time(moment, zone, send_window, quiet_hours, calendar)
    assert sent >= moment
    assert sent.utcoffset() == timedelta(0)
    assert is_send_time(sent, zone, send_window, quiet_hours, calendar)
    wall = local(sent, zone)
    assert calendar.is_working_day(wall.date())
    assert send_window.start <= wall.time().replace(microsecond=0) < send_window.end
    if sent > moment:
        # Earliest: the second before was not allowed (or before the input).
        before = sent - timedelta(seconds=1)
        assert before < moment or not is_send_time(before, zone, send_window, quiet_hours, calendar)
    if is_send_time(moment, zone, send_window, quiet_hours, calendar):
        assert sent == moment


# ---------------------------------------------------------------- day tables against datetime maths


OFFSET_CHANGE_ZONES = ZONES + ["Africa/Casablanca", "Asia/Gaza", "America/Boa_Vista",
                               "Australia/Lord_Howe", "Antarctica/Troll", "Europe/Dublin"]


@functools.cache
def offset_changes(zone: str) -> tuple[datetime, ...]:
    """The instants (UTC, to the second) when ``zone``'s UTC offset changes, 2024-2028."""
    tz = ZoneInfo(zone)
    found = []
    moment, end = utc("2024-01-01T00:00:00"), utc("2029-01-01T00:00:00")
    step = timedelta(hours=6)
    while moment < end:
        following = moment + step
        if moment.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            low, high = moment, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high)
        moment = following
    return tuple(found)


@st.composite
def zoned_moments(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone and a moment in UTC: anywhere in 2024-2028, or within days of one of the
    zone's offset changes (so on, next to and across them)."""
    zone = draw(st.sampled_from(OFFSET_CHANGE_ZONES))
    changes = offset_changes(zone)
    if changes and draw(st.booleans()):
        moment = draw(st.sampled_from(changes)) + timedelta(
            seconds=draw(st.integers(-3 * 86_400, 3 * 86_400)))
    else:
        moment = draw(moments)
    if draw(st.booleans()):
        moment = moment.replace(microsecond=draw(st.integers(0, 999_999)))
    return zone, moment


def datetime_business_days_after(calendar: WorkCalendar, zone: str, moment: datetime,
                                 n: int) -> datetime:
    """Business days after an instant as first written: local wall time, day stepping, UTC."""
    local = moment.astimezone(ZoneInfo(zone))
    day = naive_add_business_days(calendar, local.date(), n)
    return datetime.combine(day, local.timetz()).astimezone(UTC)


def test_tzdata_offset_changes_are_days_apart() -> None:
    """`ZoneDays` reads offsets agreeing at a day's two ends as one offset all day."""
    for zone in OFFSET_CHANGE_ZONES:
        changes = offset_changes(zone)
        assert all(b - a > timedelta(days=2) for a, b in itertools.pairwise(changes)), zone


@settings(max_examples=400, deadline=None)
@given(zoned=zoned_moments(), calendar=calendars, n=st.integers(-30, 30))
def test_business_days_from_day_tables_equal_datetime_maths(
    zoned: tuple[str, datetime], calendar: WorkCalendar, n: int
) -> None:
    zone, moment = zoned
    expected = datetime_business_days_after(calendar, zone, moment, n)
    business = calendar_module.business_days(ZoneInfo(zone), calendar)
    for asked in (moment, moment):  # worked out, then from the tables
        found = business.after(asked, n)
        assert (found, repr(found)) == (expected, repr(expected))
    elsewhere = moment.astimezone(timezone(timedelta(hours=-3, minutes=-30)))
    assert business.after(elsewhere, n) == expected


@settings(max_examples=400, deadline=None)
@given(zoned=zoned_moments(), at=clock_times, fold=st.integers(0, 1))
def test_local_days_and_wall_times_from_day_tables_equal_datetime_maths(
    zoned: tuple[str, datetime], at: time, fold: int
) -> None:
    zone, moment = zoned
    tz = ZoneInfo(zone)
    days = calendar_module.zone_days(tz)
    day = moment.astimezone(tz).toordinal()
    assert days.local_ordinal(moment) == day
    at = at.replace(fold=fold)
    expected = datetime.combine(date.fromordinal(day), at, tz).astimezone(UTC)
    found = days.wall_time(day, at)
    assert (found, repr(found)) == (expected, repr(expected))
    offset = days.local_day(day)
    if offset is not None:  # then every wall time of that day has that one offset
        assert expected == datetime.combine(date.fromordinal(day), at, UTC) - timedelta(
            seconds=offset)


@settings(max_examples=300, deadline=None)
@given(zoned=zoned_moments(), window=send_windows, quiet=quiet_spans, calendar=calendars)
def test_send_schedule_near_offset_changes_equals_working_each_day_out_afresh(
    zoned: tuple[str, datetime], window: tuple[time, time], quiet: tuple[time, time] | None,
    calendar: WorkCalendar,
) -> None:
    zone, moment = zoned
    send_window, quiet_hours = sendable_hours(window, quiet)
    expected = day_by_day_send_time(moment, zone, send_window, quiet_hours, calendar)
    for _ in range(2):  # worked out, then from the day's remembered spans
        found = next_send_time(moment, zone, send_window, quiet_hours, calendar)
        assert (found, repr(found)) == (expected, repr(expected))
