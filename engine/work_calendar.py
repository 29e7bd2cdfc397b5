"""Calendar maths for the cadence: working days, public holidays and send times.

Everything here is pure: no clock reads, no I/O beyond the `holidays` package's
built-in tables. It runs for every candidacy on every tick and in replays, so
holiday sets are cached per (country, subdivision, observed, year), calendars
are shared through :func:`work_calendar`, each day step is O(1), and a zone's UTC
offsets are kept by day (:class:`ZoneDays`) so that instants and local days convert
with integer arithmetic.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Protocol, cast, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

__all__ = [
    "BusinessDays",
    "CalendarError",
    "SendSchedule",
    "TimeRange",
    "WorkCalendar",
    "allowed_send_intervals",
    "business_days",
    "is_send_time",
    "next_send_time",
    "resolve_zone",
    "send_schedule",
    "work_calendar",
]

MONDAY_TO_FRIDAY: tuple[int, ...] = (0, 1, 2, 3, 4)
_DAY = timedelta(days=1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_SECONDS_PER_DAY = 86_400
# A send time further than this is a misconfiguration (e.g. every day a holiday), not a wait.
_SEARCH_HORIZON_DAYS = 400


class CalendarError(ValueError):
    """A calendar cannot be built or used as asked (unknown country, time zone, ...)."""


class TimeRange(Protocol):
    """A daily range of local wall-clock time, ``[start, end)``; wraps midnight if end <= start."""

    @property
    def start(self) -> time: ...

    @property
    def end(self) -> time: ...


@lru_cache(maxsize=8192)
def _holiday_dates(
    country: str, subdivision: str | None, observed: bool, year: int
) -> frozenset[date]:
    """The public holidays of one country/subdivision in one year, computed once."""
    table = holidays_lib.country_holidays(
        country, subdiv=subdivision, years=year, observed=observed
    )
    return frozenset(table.keys())


def _check_region(country: str, subdivision: str | None) -> tuple[str, str | None]:
    """Canonicalise a country/subdivision pair, refusing ones the holidays package lacks.

    Asks for the one country (``list_supported_countries`` would import every country
    module of the package: some 50 ms at each process start, ``closer tick`` included)."""
    code = country.strip().upper()
    try:
        table = holidays_lib.country_holidays(code, years=())
    except NotImplementedError:
        raise CalendarError(
            f"unknown country code {country!r} for public holidays; "
            "use an ISO 3166-1 alpha-2 code such as US, GB or BR"
        ) from None
    return code, _check_subdivision(code, subdivision, list(getattr(table, "subdivisions", ())))


def _check_subdivision(code: str, subdivision: str | None, known: list[str] | None) -> str | None:
    """Match a subdivision case-insensitively against the country's known ones."""
    if subdivision is None or subdivision.strip() == "":
        return None
    wanted = subdivision.strip()
    if known is not None:
        for candidate in known:
            if candidate.upper() == wanted.upper():
                return candidate
    try:
        holidays_lib.country_holidays(code, subdiv=wanted, years=())
    except NotImplementedError:
        listing = ", ".join(known) if known else "none"
        raise CalendarError(
            f"unknown subdivision {subdivision!r} of country {code}; known: {listing}"
        ) from None
    return wanted


class WorkCalendar:
    """Working days of one place: a working week minus (optionally) its public holidays.

    Build one through :func:`work_calendar` so equal calendars are shared and their
    holiday caches reused across candidacies.
    """

    __slots__ = ("country", "subdivision", "working_days", "honour_holidays", "observed",
                 "_index", "_workday", "_years", "_working_ordinals")

    def __init__(
        self,
        country: str | None = None,
        subdivision: str | None = None,
        working_days: Iterable[int] = MONDAY_TO_FRIDAY,
        honour_holidays: bool = True,
        observed: bool = True,
    ) -> None:
        days = tuple(sorted(set(working_days)))
        if not days:
            raise CalendarError("a working week needs at least one working day")
        if any(not 0 <= d <= 6 for d in days):
            raise CalendarError(f"working days are 0 (Monday) to 6 (Sunday), got {days}")
        if country is None:
            if subdivision:
                raise CalendarError(f"subdivision {subdivision!r} given without a country")
            self.country: str | None = None
            self.subdivision: str | None = None
        else:
            self.country, self.subdivision = _check_region(country, subdivision)
        self.working_days: tuple[int, ...] = days
        self.honour_holidays = honour_holidays and self.country is not None
        self.observed = observed
        # Indexed by weekday, so a day check is one tuple lookup.
        self._workday: tuple[bool, ...] = tuple(d in days for d in range(7))
        self._years: dict[int, frozenset[date]] = {}
        self._working_ordinals: dict[int, list[int]] = {}
        # For `shift`, one tuple (so threads sharing the calendar read one consistent
        # index): the first and last of a run of years, the ordinal of the first one's
        # 1 January, their working days, and for each day from then on how many of
        # those come before it.
        self._index: tuple[int, int, int, list[int], list[int]] = (0, -1, 0, [], [])

    def __repr__(self) -> str:
        return (
            f"WorkCalendar(country={self.country!r}, subdivision={self.subdivision!r}, "
            f"working_days={self.working_days!r}, honour_holidays={self.honour_holidays!r})"
        )

    def holidays_in(self, year: int) -> frozenset[date]:
        """The public holidays this calendar skips in ``year`` (empty when not honoured)."""
        found = self._years.get(year)
        if found is None:
            if self.honour_holidays and self.country is not None:
                found = _holiday_dates(self.country, self.subdivision, self.observed, year)
            else:
                found = frozenset()
            self._years[year] = found
        return found

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` (a local date) is in the working week and not a public holiday."""
        if isinstance(day, datetime):
            day = day.date()
        if not self._workday[day.weekday()]:
            return False
        if not self.honour_holidays:
            return True
        year_set = self._years.get(day.year)
        if year_set is None:
            year_set = self.holidays_in(day.year)
        return day not in year_set

    def next_working_day(self, day: date) -> date:
        """``day`` itself when it is a working day, else the first working day after it."""
        while not self.is_working_day(day):
            day += _DAY
        return day

    @overload
    def add_business_days(self, start: datetime, n: int) -> datetime: ...

    @overload
    def add_business_days(self, start: date, n: int) -> date: ...

    def add_business_days(self, start: date, n: int) -> date:
        """Move ``n`` working days from ``start``, keeping any time of day.

        ``n > 0`` gives the n-th working day after ``start``; ``n < 0`` the n-th before;
        ``n == 0`` gives ``start`` when it is a working day, else the next working day.
        The result is always a working day. Pass a *local* date or datetime: the date
        part is used as is.
        """
        if isinstance(start, datetime):
            result = date.fromordinal(self.shift(start.toordinal(), n))
            return datetime.combine(result, start.timetz())
        return date.fromordinal(self.shift(start.toordinal(), n))

    def shift(self, ordinal: int, n: int) -> int:
        """`add_business_days` on day ordinals: an index into the working days of the
        years asked about, so a move costs two lookups whatever ``n`` is."""
        while True:
            first, last, start, days, below = self._index
            k = ordinal - start
            if 0 <= k < len(below) - 1:
                # Working days up to the start (n > 0) or before it (n <= 0), then n on.
                i = below[k + 1] + n - 1 if n > 0 else below[k] + n
                if 0 <= i < len(days):
                    return days[i]
                self._cover(first - 1 if i < 0 else last + 1)
            else:
                self._cover(date.fromordinal(ordinal).year)

    def _cover(self, year: int) -> None:
        """Extend the years `shift` indexes to ``year`` (or start afresh from it when
        it is far from them: a stray date must not index the centuries in between)."""
        first, last, _start, days, _below = self._index
        if not days or not first - 10 <= year <= last + 10:
            first = last = year
        else:
            first, last = min(first, year), max(last, year)
        days = [o for y in range(first, last + 1) for o in self._working_in(y)]
        start = date(first, 1, 1).toordinal()
        below = []
        count = 0
        working = iter(days)
        next_working = next(working, None)
        for ordinal in range(start, date(last, 12, 31).toordinal() + 2):
            below.append(count)
            if ordinal == next_working:
                count += 1
                next_working = next(working, None)
        self._index = (first, last, start, days, below)

    def _working_in(self, year: int) -> list[int]:
        """The ordinals of ``year``'s working days, ascending, computed once per year."""
        days = self._working_ordinals.get(year)
        if days is None:
            first = date(year, 1, 1).toordinal()
            last = date(year, 12, 31).toordinal()
            holidays = {d.toordinal() for d in self.holidays_in(year)}
            workday = self._workday
            # Ordinal 1 (0001-01-01) is a Monday, so (ordinal - 1) % 7 is the weekday.
            days = [o for o in range(first, last + 1)
                    if workday[(o - 1) % 7] and o not in holidays]
            self._working_ordinals[year] = days
        return days

    def business_days_between(self, a: date, b: date) -> int:
        """Working days ``d`` with ``a < d <= b``; negative (the count in ``(b, a]``) when b < a.

        So ``add_business_days(a, business_days_between(a, b)) == b`` whenever ``b`` is
        a working day after ``a``.
        """
        if isinstance(a, datetime):
            a = a.date()
        if isinstance(b, datetime):
            b = b.date()
        if b < a:
            return -self.business_days_between(b, a)
        # The same per-year lists of working days `add_business_days` moves through.
        low, high = a.toordinal(), b.toordinal()
        count = 0
        for year in range(a.year, b.year + 1):
            days = self._working_in(year)
            count += bisect.bisect_right(days, high) - bisect.bisect_right(days, low)
        return count


def work_calendar(
    country: str | None,
    subdivision: str | None = None,
    working_days: Iterable[int] = MONDAY_TO_FRIDAY,
    honour_holidays: bool = True,
    observed: bool = True,
) -> WorkCalendar:
    """A shared :class:`WorkCalendar` for these settings (built once, then reused).

    Country and subdivision codes are case-insensitive, so ``us`` and ``US`` share one.
    """
    return _shared_calendar(
        country.strip().upper() if country else None,
        subdivision.strip().upper() if subdivision else None,
        tuple(sorted(set(working_days))),
        honour_holidays,
        observed,
    )


@lru_cache(maxsize=1024)
def _shared_calendar(
    country: str | None,
    subdivision: str | None,
    working_days: tuple[int, ...],
    honour_holidays: bool,
    observed: bool,
) -> WorkCalendar:
    """The cache behind :func:`work_calendar`, keyed on normalised settings."""
    return WorkCalendar(country, subdivision, working_days, honour_holidays, observed)


def resolve_zone(tz: str | tzinfo) -> tzinfo:
    """An IANA time zone name (or a tzinfo) as a tzinfo, with a clear error when unknown."""
    if isinstance(tz, tzinfo):
        return tz
    return _zone(tz)


@lru_cache(maxsize=1024)
def _zone(name: str) -> tzinfo:
    """Look a zone up once; ZoneInfo keys are case-sensitive IANA names."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(
            f"unknown time zone {name!r}; use an IANA name such as America/New_York"
        ) from None


_UNSET: Any = object()
"""Not yet worked out (None is an answer in the day tables below)."""


class ZoneDays:
    """One time zone's UTC offset by UTC day, so that an instant's local day (and, away
    from offset changes, the instant of a local wall time) is integer arithmetic
    instead of a tzinfo call.

    A day's offset is known only when it holds all day: offsets agreeing at a day's
    two ends mean none changed in between, as tzdata's offset changes are days apart
    (nearly a week at the least; tests check it). A day whose offset changes is None:
    callers then take the datetime path.

    Kept for replay's CPU: without these tables it spends 1.09-1.10x the CPU an event
    (`benchmarks/fastpaths_bench.py replay`, docs/performance.md, issue 15 item 3)."""

    __slots__ = ("_walls", "local", "utc", "zone")

    _BLOCK = 32
    """UTC days worked out at a time: replay and live ticks ask about runs of days."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self.utc: dict[int, int | None] = {}
        self.local: dict[int, int | None] = {}
        self._walls: dict[tuple[int, time, int], datetime] = {}

    def utc_day(self, ordinal: int) -> int | None:
        """The UTC offset in seconds throughout the UTC day ``ordinal`` (None if it changes):
        from the table, worked out on a miss."""
        found = self.utc.get(ordinal, _UNSET)
        if found is _UNSET:
            if len(self.utc) >= 8192:
                self.utc.clear()
            first = ordinal - ordinal % self._BLOCK
            try:
                midnight = datetime.combine(date.fromordinal(first), time(), UTC)
                offsets = [_whole_seconds((midnight + timedelta(days=i)).astimezone(
                    self.zone).utcoffset()) for i in range(self._BLOCK + 1)]
            except (OverflowError, ValueError):  # the ends of datetime's range
                self.utc[ordinal] = None
                return None
            for i in range(self._BLOCK):
                offset = offsets[i]
                self.utc[first + i] = offset if offset == offsets[i + 1] else None
            # From the list, not the table: another thread may have cleared it meanwhile.
            i = ordinal - first
            found = offsets[i] if offsets[i] == offsets[i + 1] else None
        return cast("int | None", found)  # not _UNSET: a table's value, or worked out

    def local_day(self, ordinal: int) -> int | None:
        """The UTC offset in seconds of every wall time of the local day ``ordinal``, when
        the UTC days before, of and after it share it (None near an offset change).

        That day's wall times lie within those three UTC days whatever the offset (under
        24 hours), so each of them then has this one offset, once."""
        found = self.local.get(ordinal, _UNSET)
        if found is _UNSET:
            found = self.utc_day(ordinal)
            if found is not None and (self.utc_day(ordinal - 1) != found
                                      or self.utc_day(ordinal + 1) != found):
                found = None
            if len(self.local) >= 8192:
                self.local.clear()
            self.local[ordinal] = found
        return cast("int | None", found)  # not _UNSET: a table's value, or worked out

    def local_ordinal(self, moment: datetime) -> int:
        """The local day (an ordinal) of an aware ``moment`` in the zone."""
        if moment.tzinfo is UTC:
            day = moment.toordinal()
            offset = self.utc_day(day)
            if offset is not None:
                return day + (moment.hour * 3600 + moment.minute * 60 + moment.second
                              + offset) // _SECONDS_PER_DAY
        return moment.astimezone(self.zone).toordinal()

    def wall_time(self, day: int, at: time) -> datetime:
        """The instant, in UTC, of the wall time ``at`` on the local day ``day`` (an
        ordinal), as ``datetime.combine`` in the zone reads it."""
        found = self._walls.get((day, at, at.fold))  # times equal whatever their fold
        if found is None:
            if len(self._walls) >= 8192:
                self._walls.clear()
            found = self._walls[day, at, at.fold] = datetime.combine(
                date.fromordinal(day), at, self.zone).astimezone(UTC)
        return found


def _whole_seconds(offset: timedelta | None) -> int | None:
    """A UTC offset in seconds; None for no offset or one with a fraction of a second."""
    if offset is None or offset.microseconds:
        return None
    return offset.days * _SECONDS_PER_DAY + offset.seconds


@lru_cache(maxsize=1024)
def zone_days(zone: tzinfo) -> ZoneDays:
    """The shared :class:`ZoneDays` of a zone."""
    return ZoneDays(zone)


class BusinessDays:
    """A working calendar read on one time zone's wall clock: working days after an
    instant, with the local day's shift remembered (the days asked about are few)."""

    __slots__ = ("_shifts", "calendar", "days", "zone")

    def __init__(self, zone: tzinfo, calendar: WorkCalendar) -> None:
        self.zone = zone
        self.calendar = calendar
        self.days = zone_days(zone)
        # n -> local day -> (that day's offset, how far its instants move) or None.
        self._shifts: dict[int, dict[int, tuple[int, timedelta] | None]] = {}

    def after(self, moment: datetime, n: int) -> datetime:
        """`WorkCalendar.add_business_days` on ``moment``'s wall time in the zone, in UTC."""
        if moment.tzinfo is UTC:
            day = moment.toordinal()
            offset = self.days.utc_day(day)
            if offset is not None:
                local_day = day + (moment.hour * 3600 + moment.minute * 60 + moment.second
                                   + offset) // _SECONDS_PER_DAY
                shifts = self._shifts.get(n)
                found = _UNSET if shifts is None else shifts.get(local_day, _UNSET)
                if found is _UNSET:
                    found = self._shift(local_day, n)
                # The same wall time on the day moved to, both days keeping one offset.
                if found is not None and found[0] == offset:
                    return cast(datetime, moment + found[1])  # found: not _UNSET here
        return self.calendar.add_business_days(moment.astimezone(self.zone), n).astimezone(UTC)

    def _shift(self, local_day: int, n: int) -> tuple[int, timedelta] | None:
        """The day's offset and how far its instants move for ``n`` working days; None
        when the offset of either day changes (wall time is not linear then)."""
        start = self.days.local_day(local_day)
        moved = self.calendar.shift(local_day, n)
        end = self.days.local_day(moved)
        found = None
        if start is not None and end is not None:
            found = start, _seconds_delta((moved - local_day) * _SECONDS_PER_DAY + start - end)
        shifts = self._shifts.get(n)
        if shifts is None or len(shifts) >= 8192:
            if len(self._shifts) >= 64:
                self._shifts.clear()
            shifts = self._shifts[n] = {}
        shifts[local_day] = found
        return found


@lru_cache(maxsize=4096)
def _seconds_delta(seconds: int) -> timedelta:
    """``timedelta(seconds=seconds)``, built once per value (whole days, give or take an
    offset change, so few)."""
    return timedelta(seconds=seconds)


@lru_cache(maxsize=1024)
def business_days(zone: tzinfo, calendar: WorkCalendar) -> BusinessDays:
    """The shared :class:`BusinessDays` of a zone and calendar."""
    return BusinessDays(zone, calendar)


def _seconds(t: time) -> int:
    """Seconds since local midnight for a wall-clock time."""
    return t.hour * 3600 + t.minute * 60 + t.second


def _daily_set(start: int, end: int) -> list[tuple[int, int]]:
    """A daily range ``[start, end)`` in seconds as non-wrapping pieces (end <= start wraps)."""
    if end > start:
        return [(start, end)]
    pieces = [(start, _SECONDS_PER_DAY)]
    if end > 0:
        pieces.insert(0, (0, end))
    return pieces


@lru_cache(maxsize=256)
def _allowed(
    window_start: time, window_end: time, quiet_start: time | None, quiet_end: time | None
) -> tuple[tuple[int, int], ...]:
    """Cached core of :func:`allowed_send_intervals`, keyed on plain hashable times."""
    allowed = _daily_set(_seconds(window_start), _seconds(window_end))
    if quiet_start is not None and quiet_end is not None:
        for q_start, q_end in _daily_set(_seconds(quiet_start), _seconds(quiet_end)):
            trimmed: list[tuple[int, int]] = []
            for a_start, a_end in allowed:
                if q_end <= a_start or q_start >= a_end:
                    trimmed.append((a_start, a_end))
                    continue
                if a_start < q_start:
                    trimmed.append((a_start, q_start))
                if q_end < a_end:
                    trimmed.append((q_end, a_end))
            allowed = trimmed
    return tuple(sorted(allowed))


def allowed_send_intervals(
    send_window: TimeRange, quiet_hours: TimeRange | None
) -> tuple[tuple[int, int], ...]:
    """The local wall-clock seconds ``[start, end)`` of a day when sending is allowed.

    The send window minus the quiet hours; empty when the window lies inside them.
    """
    if quiet_hours is None:
        return _allowed(send_window.start, send_window.end, None, None)
    return _allowed(send_window.start, send_window.end, quiet_hours.start, quiet_hours.end)


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC, refusing naive datetimes (their zone would be a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CalendarError(f"{moment.isoformat()} has no time zone offset")
    return moment.astimezone(UTC)


def _offset_seconds(zone: tzinfo, wall: datetime) -> int:
    """UTC offset in seconds of a naive wall time in ``zone`` (fold as set on ``wall``)."""
    offset = zone.utcoffset(wall)
    return int(offset.total_seconds()) if offset is not None else 0


def _in_allowed(seconds_of_day: int, intervals: tuple[tuple[int, int], ...]) -> bool:
    """Whether a wall-clock second of the day falls in one of the allowed pieces."""
    for start, end in intervals:
        if start <= seconds_of_day < end:
            return True
    return False


def _day_start_ts(day: date) -> int:
    """POSIX seconds of ``day`` 00:00 as if it were UTC; subtract an offset to localise."""
    return (day.toordinal() - _EPOCH_ORDINAL) * _SECONDS_PER_DAY


def _transition_ts(zone: tzinfo, low: int, high: int, low_offset: int) -> int:
    """First POSIX second in ``(low, high]`` whose UTC offset differs from ``low_offset``."""
    while high - low > 1:
        middle = (low + high) // 2
        here = datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset()
        if here is not None and int(here.total_seconds()) == low_offset:
            low = middle
        else:
            high = middle
    return high


def _earliest_on_transition_day(
    zone: tzinfo, day: date, start_ts: int, intervals: tuple[tuple[int, int], ...],
    offset_before: int,
) -> int | None:
    """Earliest allowed POSIX second >= start_ts on a day whose UTC offset changes.

    Wall time jumps (gap) or repeats (overlap) here, so candidate instants are the
    moment itself, each window start under both folds, and the transition; each is
    checked against its real wall time.
    """
    base = _day_start_ts(day)
    day_open = base - offset_before
    offset_after = _offset_seconds(zone, datetime.combine(day + _DAY, time()))
    day_close = base + _SECONDS_PER_DAY - offset_after
    transition = _transition_ts(zone, day_open - 1, day_close + 1, offset_before)
    candidates = {start_ts, transition}
    wall_midnight = datetime.combine(day, time())
    for start, _end in intervals:
        wall = wall_midnight + timedelta(seconds=start)
        for fold in (0, 1):
            candidates.add(base + start - _offset_seconds(zone, wall.replace(fold=fold)))
    for ts in sorted(c for c in candidates if c >= start_ts):
        local = datetime.fromtimestamp(ts, UTC).astimezone(zone)
        if local.date() != day:
            continue
        if _in_allowed(local.hour * 3600 + local.minute * 60 + local.second, intervals):
            return ts
    return None


def next_send_time(
    moment: datetime,
    tz: str | tzinfo,
    send_window: TimeRange,
    quiet_hours: TimeRange | None,
    calendar: WorkCalendar,
) -> datetime:
    """The earliest moment ``>= moment`` when a message may reach the recipient, in UTC.

    That moment is on a working day of ``calendar`` and inside the send window but
    outside the quiet hours, all read on the recipient's wall clock in ``tz`` (an
    IANA name). Correct across DST changes: a window boundary skipped by a
    spring-forward gap opens at the transition; a repeated hour is judged by its
    real wall time. Sub-second parts of ``moment`` are kept when it is already allowed.
    """
    return send_schedule(tz, send_window, quiet_hours, calendar).next(moment)


def send_schedule(
    tz: str | tzinfo, send_window: TimeRange, quiet_hours: TimeRange | None,
    calendar: WorkCalendar,
) -> SendSchedule:
    """The shared :class:`SendSchedule` of a recipient's zone, hours and working days."""
    zone = resolve_zone(tz)
    intervals = allowed_send_intervals(send_window, quiet_hours)
    if not intervals:
        raise CalendarError("the send window lies entirely inside the quiet hours")
    return _shared_schedule(zone, intervals, calendar)


@lru_cache(maxsize=1024)
def _shared_schedule(zone: tzinfo, intervals: tuple[tuple[int, int], ...],
                     calendar: WorkCalendar) -> SendSchedule:
    return SendSchedule(zone, intervals, calendar)


_Spans = tuple[tuple[int, int, datetime], ...]
"""A local day's allowed spans: POSIX seconds ``[open, close)`` and the opening in UTC."""

_TRANSITION_DAY = None
"""A day whose UTC offset changes: its sending moments are worked out each time."""


class SendSchedule:
    """When messages may reach one recipient: :func:`next_send_time` for one zone, one
    set of allowed daily intervals and one calendar, with each local day's allowed
    spans of POSIX seconds worked out once (days seen are few; answers are many)."""

    __slots__ = ("_days", "calendar", "intervals", "zone", "zone_days")

    def __init__(self, zone: tzinfo, intervals: tuple[tuple[int, int], ...],
                 calendar: WorkCalendar) -> None:
        self.zone = zone
        self.intervals = intervals
        self.calendar = calendar
        self.zone_days = zone_days(zone)
        self._days: dict[int, _Spans | None] = {}

    def next(self, moment: datetime) -> datetime:
        """The earliest moment ``>= moment`` when a message may go (see `next_send_time`)."""
        if moment.tzinfo is UTC:
            # Its local day from the zone's offset that UTC day, when one holds all day.
            day = moment.toordinal()
            offset = self.zone_days.utc_day(day)
            if offset is not None:
                seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
                whole_ts = (day - _EPOCH_ORDINAL) * _SECONDS_PER_DAY + seconds
                ordinal = day + (seconds + offset) // _SECONDS_PER_DAY
                spans = self._days.get(ordinal)
                if spans:  # the common case, that day's spans (a transition day's are None)
                    for open_ts, close_ts, opening in spans:
                        if whole_ts < close_ts:
                            if whole_ts < open_ts:
                                return opening
                            return moment
                return self._first(moment, whole_ts, ordinal)
            utc_moment = moment
        else:
            utc_moment = _utc(moment)
        whole_ts = (utc_moment - _EPOCH) // _SECOND  # POSIX seconds, in integers
        return self._first(utc_moment, whole_ts, utc_moment.astimezone(self.zone).toordinal())

    def _first(self, utc_moment: datetime, whole_ts: int, ordinal: int) -> datetime:
        """`next` from the moment in UTC, its whole POSIX seconds and its local day."""
        days = self._days
        for _ in range(_SEARCH_HORIZON_DAYS):
            spans = days.get(ordinal, False)
            if spans is False:
                spans = self._spans(ordinal)
            if spans is _TRANSITION_DAY:
                found = _earliest_on_day(self.zone, date.fromordinal(ordinal), whole_ts,
                                         self.intervals)
                if found is not None:
                    if found == whole_ts:
                        return utc_moment
                    return datetime.fromtimestamp(found, UTC)
            else:
                for open_ts, close_ts, opening in cast(_Spans, spans):
                    if whole_ts < close_ts:
                        return opening if whole_ts < open_ts else utc_moment
            ordinal += 1
        raise CalendarError(
            f"no sending moment within {_SEARCH_HORIZON_DAYS} days of {utc_moment.isoformat()}; "
            "check the working week and holidays"
        )

    def _spans(self, ordinal: int) -> _Spans | None:
        """A local day's allowed spans ``[open, close)`` in POSIX seconds, with the opening
        as a datetime in UTC: none on a day off; `_TRANSITION_DAY` when its offset changes
        (wall time is not linear then)."""
        if len(self._days) >= 4096:
            self._days.clear()
        day = date.fromordinal(ordinal)
        spans: _Spans | None = ()
        if self.calendar.is_working_day(day):
            offset = self.zone_days.local_day(ordinal)
            if offset is None:  # near an offset change: both midnights asked
                offset = _offset_seconds(self.zone, datetime.combine(day, time()))
                if offset != _offset_seconds(self.zone, datetime.combine(day + _DAY, time())):
                    offset = None
            if offset is None:
                spans = _TRANSITION_DAY
            else:
                base = (ordinal - _EPOCH_ORDINAL) * _SECONDS_PER_DAY - offset
                spans = tuple([(base + start, base + end,
                                datetime.fromtimestamp(base + start, UTC))
                               for start, end in self.intervals])
        self._days[ordinal] = spans
        return spans


def _earliest_on_day(
    zone: tzinfo, day: date, start_ts: int, intervals: tuple[tuple[int, int], ...]
) -> int | None:
    """Earliest allowed POSIX second >= start_ts whose local date is ``day``, if any."""
    base = _day_start_ts(day)
    offset_before = _offset_seconds(zone, datetime.combine(day, time()))
    offset_after = _offset_seconds(zone, datetime.combine(day + _DAY, time()))
    if offset_before != offset_after:
        return _earliest_on_transition_day(zone, day, start_ts, intervals, offset_before)
    # No offset change today: wall time maps linearly onto instants.
    for start, end in intervals:
        open_ts = base + start - offset_before
        close_ts = base + end - offset_before
        if start_ts < close_ts:
            return max(open_ts, start_ts)
    return None


def is_send_time(
    moment: datetime,
    tz: str | tzinfo,
    send_window: TimeRange,
    quiet_hours: TimeRange | None,
    calendar: WorkCalendar,
) -> bool:
    """Whether a message may reach the recipient at ``moment`` (see :func:`next_send_time`)."""
    local = _utc(moment).astimezone(resolve_zone(tz))
    if not calendar.is_working_day(local.date()):
        return False
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    return _in_allowed(seconds, allowed_send_intervals(send_window, quiet_hours))
