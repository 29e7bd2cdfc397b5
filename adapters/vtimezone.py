"""VTIMEZONE components that every calendar reads, valid for as long as the zone's rule holds.

icalendar 7.3's ``Timezone.from_tzinfo`` (and ``Calendar.add_missing_timezones``) lists every
transition as an RDATE up to a last date, 2038 by default: vobject reads such lists an hour off
in summer, and nothing past the last date is described.  Here the zone's current rule, the
POSIX TZ string that ends its TZif file (RFC 8536, section 3.3), becomes one STANDARD and one
DAYLIGHT with yearly RRULEs, or a single STANDARD for a zone without daylight saving time.
The rule is checked against ``zoneinfo`` around the event and up to 2100; where it does not
describe the zone (Ramadan hours, a change at a time an RRULE cannot say), the VTIMEZONE lists
the zone's changes over the three years around the event instead (`_listed`).
"""

from __future__ import annotations

import importlib.resources
import os
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache

import icalendar

_DAY = timedelta(days=1)
_FIRST_YEAR = 1970  # the tz database's guarantee of accuracy starts here
_LOOKBACK = 100  # years: an invite for 2100 still shows the years vobject compares (2000-2020)
# The tz database lists changes up to 2087 (Morocco); past them zoneinfo follows the POSIX rule.
_HORIZON = 2100
_WEEKDAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")  # POSIX numbers the days from Sunday
_NAME = r"[A-Za-z]{3,}|<[A-Za-z0-9+-]+>"
_CLOCK = r"[+-]?\d{1,3}(?::\d{2}){0,2}"
_ONSET = rf"M(\d{{1,2}})\.([1-5])\.([0-6])(?:/({_CLOCK}))?"
_POSIX_TZ = re.compile(
    rf"(?P<std>{_NAME})(?P<std_offset>{_CLOCK})"
    rf"(?:(?P<dst>{_NAME})(?P<dst_offset>{_CLOCK})?,{_ONSET},{_ONSET})?")


def _clock(text: str) -> timedelta:
    """``[+-]hh[:mm[:ss]]`` as a signed duration."""
    sign = -1 if text.startswith("-") else 1
    parts = [int(part) for part in text.lstrip("+-").split(":")]
    hours, minutes, seconds = (parts + [0, 0])[:3]
    return sign * timedelta(hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class Onset:
    """A yearly change ``Mm.w.d/time``: day ``weekday`` of week ``week`` (5: the last) of
    ``month``, at ``time`` of local time before the change (it may pass 24 h or be negative)."""

    month: int
    week: int
    weekday: int
    time: timedelta

    def local(self, year: int) -> datetime:
        """The naive local time of the change in ``year``, in the offset it changes from."""
        first = date(year, self.month, 1)
        day = first + timedelta(days=(self.weekday - (first.isoweekday() % 7)) % 7)
        day += timedelta(weeks=self.week - 1)
        while day.month != self.month:  # week 5 means the last such day of the month
            day -= timedelta(weeks=1)
        return datetime(day.year, day.month, day.day) + self.time

    def rrule(self) -> dict[str, object] | None:
        """The RRULE that repeats this change every year, or None if an RRULE cannot say it
        (a time shifted past a day into another month)."""
        shift, _ = divmod(self.time, _DAY)
        if shift == 0:
            nth = -1 if self.week == 5 else self.week
            return {"FREQ": "YEARLY", "BYMONTH": self.month,
                    "BYDAY": f"{nth}{_WEEKDAYS[self.weekday]}"}
        # E.g. "the Saturday before the last Sunday": that weekday in a range of month days.
        shortest = 28 if self.month == 2 else 30 if self.month in (4, 6, 9, 11) else 31
        if self.week == 5:
            days = range(-7 + shift, shift)
            fits = days[-1] <= -1 and days[0] >= -shortest
        else:
            days = range(7 * (self.week - 1) + 1 + shift, 7 * self.week + 1 + shift)
            fits = days[0] >= 1 and days[-1] <= shortest
        if not fits:
            return None
        return {"FREQ": "YEARLY", "BYMONTH": self.month, "BYMONTHDAY": list(days),
                "BYDAY": _WEEKDAYS[(self.weekday + shift) % 7]}


@dataclass(frozen=True)
class ZoneRule:
    """A zone's current rule: its standard offset and, if it keeps one, its daylight saving
    offset with the two yearly changes (offsets east of UTC, as iCalendar writes them)."""

    std_name: str
    std_offset: timedelta
    dst_name: str | None = None
    dst_offset: timedelta | None = None
    to_dst: Onset | None = None
    to_std: Onset | None = None

    @classmethod
    def parse(cls, posix_tz: str) -> ZoneRule | None:
        """The rule of a POSIX TZ string such as ``EST5EDT,M3.2.0,M11.1.0``, or None for a
        form this module does not read (a change given by day of the year, say)."""
        found = _POSIX_TZ.fullmatch(posix_tz)
        if found is None:
            return None
        std_offset = -_clock(found["std_offset"])  # POSIX counts hours west of UTC
        if found["dst"] is None:
            return cls(found["std"].strip("<>"), std_offset)
        dst_offset = (-_clock(found["dst_offset"]) if found["dst_offset"]
                      else std_offset + timedelta(hours=1))
        month1, week1, day1, time1, month2, week2, day2, time2 = found.groups()[4:]
        return cls(found["std"].strip("<>"), std_offset, found["dst"].strip("<>"), dst_offset,
                   Onset(int(month1), int(week1), int(day1), _clock(time1 or "2")),
                   Onset(int(month2), int(week2), int(day2), _clock(time2 or "2")))

    def changes(self, year: int) -> list[tuple[datetime, timedelta]]:
        """The UTC instants at which the offset changes in ``year``, with the new offset."""
        if self.to_dst is None or self.to_std is None or self.dst_offset is None:
            return []
        return sorted([
            ((self.to_dst.local(year) - self.std_offset).replace(tzinfo=UTC), self.dst_offset),
            ((self.to_std.local(year) - self.dst_offset).replace(tzinfo=UTC), self.std_offset),
        ])

    def offset_at(self, moment: datetime,
                  changes: list[tuple[datetime, timedelta]] | None = None) -> timedelta:
        """The offset this rule gives at the aware ``moment`` (``changes``: those of its
        year, if already known)."""
        if changes is None:
            changes = self.changes(moment.astimezone(UTC).year)
        if not changes:
            return self.std_offset
        offset = changes[-1][1]  # the last change of a year holds until the first of the next
        for instant, new_offset in changes:
            if instant <= moment:
                offset = new_offset
        return offset

    def describes(self, zone: zoneinfo.ZoneInfo, year: int, every: int = 1) -> bool:
        """Whether the rule gives ``zone``'s offsets throughout ``year``: at every change, the
        second before it, and at noon UTC every ``every`` days."""
        changes = self.changes(year)
        probes = [datetime(year, 1, 1, 12, tzinfo=UTC) + n * _DAY for n in range(0, 366, every)]
        for instant, _ in changes:
            probes += [instant - timedelta(seconds=1), instant]
        return all(self.offset_at(probe, changes) == probe.astimezone(zone).utcoffset()
                   for probe in probes if probe.year == year)


def posix_tz(key: str) -> str | None:
    """The POSIX TZ string that ends the TZif file ``zoneinfo`` loads for ``key``.

    Mirrors zoneinfo's search (Python 3.11-3.13): each folder of ``zoneinfo.TZPATH``, then
    the ``tzdata`` package.  A file other than the one zoneinfo read only makes
    ``ZoneRule.describes`` refuse the rule, never a wrong invite.
    """
    data: bytes | None = None
    for folder in zoneinfo.TZPATH:
        path = os.path.join(folder, *key.split("/"))
        if os.path.isfile(path):
            with open(path, "rb") as file:
                data = file.read()
            break
    else:
        try:
            data = importlib.resources.files("tzdata.zoneinfo").joinpath(
                *key.split("/")).read_bytes()
        except (ModuleNotFoundError, FileNotFoundError):
            return None
    # A version 2+ file ends with the footer "\n<TZ string>\n".
    if not data.startswith(b"TZif") or data[4:5] < b"2" or not data.endswith(b"\n"):
        return None
    return data[:-1].rsplit(b"\n", 1)[-1].decode("ascii", "replace")


def vtimezone(zone: zoneinfo.ZoneInfo, around: datetime) -> icalendar.Timezone:
    """The VTIMEZONE for ``zone``: from the year its current rule took effect (1970 at the
    earliest) for as long as the rule holds, past 2038 too; around ``around`` if the rule
    does not describe the zone there."""
    assert zone.key is not None  # MessageContext.zone comes from an IANA name
    # The years checked stay inside datetime's range (extreme dates are refused upstream).
    year = min(max(around.year, _FIRST_YEAR + 1), 9997)
    rule = _rule(zone.key)
    # The event's years day by day; the years after it, where the tz database still lists
    # changes of its own (Gaza's and Morocco's Ramadan hours), week by week.
    if (rule is None or not all(_describes(zone.key, y) for y in range(year - 1, year + 2))
            or not all(_describes(zone.key, y, 7) for y in range(year + 2, _HORIZON))):
        return _listed(zone, year - 1, year + 2)
    # From the rule's first year: vobject takes a zone that matches UTC over 2000-2020 for
    # UTC itself (vobject 0.9.9's tzinfo_eq), so London must show its summers of those years.
    # At most _LOOKBACK years, week by week: they only place DTSTART.
    first = max(_FIRST_YEAR, year - _LOOKBACK)
    while year - 1 >= first and _describes(zone.key, year - 1, 7):
        year -= 1
    return _from_rule(zone.key, rule, year)


@cache
def _rule(key: str) -> ZoneRule | None:
    """The zone's current rule, if this module can write it with RRULEs."""
    text = posix_tz(key)
    rule = ZoneRule.parse(text) if text else None
    if rule is None or any(onset is not None and onset.rrule() is None
                           for onset in (rule.to_dst, rule.to_std)):
        return None
    return rule


@lru_cache(maxsize=4096)
def _describes(key: str, year: int, every: int = 1) -> bool:
    """Whether the zone's current rule gives its offsets in ``year`` (`ZoneRule.describes`).

    Kept per zone and year: a first invite in a zone checks its years, those ahead to 2100
    and those back to the rule's start (25-65 ms in New York, London or Tokyo); a later one
    builds its VTIMEZONE in 0.2 ms.
    """
    rule = _rule(key)
    return rule is not None and rule.describes(zoneinfo.ZoneInfo(key), year, every)


def _from_rule(key: str, rule: ZoneRule, year: int) -> icalendar.Timezone:
    """The VTIMEZONE of ``rule`` from ``year`` on, with no end."""
    timezone = icalendar.Timezone()
    timezone.add("tzid", key)
    if rule.to_dst is None or rule.to_std is None or rule.dst_offset is None:
        timezone.add_component(_observance(
            icalendar.TimezoneStandard(), rule.std_name, rule.std_offset, rule.std_offset,
            datetime(year, 1, 1), None))
        return timezone
    assert rule.dst_name is not None
    to_dst = (rule.dst_name, rule.std_offset, rule.dst_offset, rule.to_dst)
    to_std = (rule.std_name, rule.dst_offset, rule.std_offset, rule.to_std)
    for name, offset_from, offset_to, onset in (to_dst, to_std):
        # The larger offset is the summer one (Europe/Dublin's POSIX "standard" is summer).
        summer = offset_to > offset_from
        component = icalendar.TimezoneDaylight() if summer else icalendar.TimezoneStandard()
        timezone.add_component(_observance(component, name, offset_from, offset_to,
                                           onset.local(year), onset.rrule()))
    return timezone


def _listed(zone: zoneinfo.ZoneInfo, first: int, end: int) -> icalendar.Timezone:
    """The VTIMEZONE that lists ``zone``'s changes from January ``first`` to before ``end``.

    Not icalendar 7.3's ``Timezone.from_tzinfo``: its coarse search misses changes a few
    weeks apart (Morocco's 2027 Ramadan hour, say), and it writes the DTSTART of a spring
    change in the new offset where RFC 5545 wants the one it changes from.
    """
    assert zone.key is not None
    start = int(datetime(first, 1, 1, tzinfo=UTC).timestamp())
    opening = datetime.fromtimestamp(start, zone)
    timezone = icalendar.Timezone()
    timezone.add("tzid", zone.key)
    timezone.add("comment", f"The changes from {first}-01-01 to {end}-01-01 only.")
    offset = opening.utcoffset()
    assert offset is not None
    timezone.add_component(_observance(icalendar.TimezoneStandard(), opening.tzname() or "",
                                       offset, offset, opening.replace(tzinfo=None), None))
    starts: dict[tuple[timedelta, timedelta, str], list[datetime]] = {}
    for instant, before, after in _changes(zone, start, int(
            datetime(end, 1, 1, tzinfo=UTC).timestamp())):
        name = datetime.fromtimestamp(instant, zone).tzname() or ""
        local = datetime.fromtimestamp(instant, UTC).replace(tzinfo=None) + before
        starts.setdefault((before, after, name), []).append(local)
    for (before, after, name), locals_ in starts.items():
        summer = after > before
        component = _observance(
            icalendar.TimezoneDaylight() if summer else icalendar.TimezoneStandard(),
            name, before, after, locals_[0], None)
        if locals_[1:]:
            component.add("rdate", locals_[1:])
        timezone.add_component(component)
    return timezone


@lru_cache(maxsize=256)
def _changes(zone: zoneinfo.ZoneInfo, start: int, end: int
             ) -> tuple[tuple[int, timedelta, timedelta], ...]:
    """Each change of ``zone``'s offset between two Unix times: (instant, before, after).

    Probes every 6 hours (no zone changes twice in that time), then bisects to the second;
    kept per zone and window (7 ms for Gaza's three years, then nothing).
    """
    def offset(at: int) -> timedelta | None:
        return datetime.fromtimestamp(at, zone).utcoffset()

    found = []
    step = 6 * 3600
    current = offset(start)
    for probe in range(start + step, end, step):
        if (after := offset(probe)) == current:
            continue
        low, high = probe - step, probe
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if offset(middle) == current else (low, middle)
        assert current is not None and after is not None
        found.append((high, current, after))
        current = after
    return tuple(found)


def _observance(component: icalendar.Component, name: str, offset_from: timedelta,
                offset_to: timedelta, start: datetime, rrule: dict[str, object] | None
                ) -> icalendar.Component:
    """One STANDARD or DAYLIGHT: DTSTART is local time in the offset it changes from."""
    component.add("dtstart", start)
    if rrule is not None:
        component.add("rrule", rrule)
    component.add("tzoffsetfrom", offset_from)
    component.add("tzoffsetto", offset_to)
    component.add("tzname", name)
    return component
