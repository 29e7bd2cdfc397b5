"""Extreme input is refused at the door: moments and dates outside 1970-01-01..2200-12-31
(whatever their offset) are a 422 naming the field, bodies past the size limit a 413 before
they are read, bodies that are not JSON a 415, JSON nested too deeply a 422; and property
tests over every operation's own input schema (taken from the OpenAPI document, so new
fields are covered as they come) with extreme dates, huge and odd strings and deep nesting
find no server error, including in what the calendar then computes from what was accepted."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from api_support import COMMANDS, LiveServer, TestClient, ok, problem, sqlite_only
from builders import PANEL, candidacy_at, interview
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.app import create_app
from api.auth import create_token
from api.cli import app as cli
from api.limits import BodyLimits, nested_deeper_than
from api.settings import Settings, get_settings
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.errors import InvalidInput
from engine.scheduler import tick
from engine.store import eventsourcing_env
from engine.values import EARLIEST, LATEST, Actor, NewCandidacy, validated

pytest_plugins = ["api_fixtures"]  # api, client and client_for

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
LIMIT = 64 * 1024
JSON = {"Content-Type": "application/json"}


# -- strategies: extreme values of each kind a schema names ------------------------------------

_OFFSETS = st.one_of(st.sampled_from([-14 * 60, 14 * 60]), st.sampled_from([0, -12 * 60, 345]),
                     st.integers(-14 * 60, 14 * 60)).map(lambda m: timezone(timedelta(minutes=m)))
_EDGES = [datetime(1, 1, 1), datetime(1969, 12, 31, 10), datetime(1970, 1, 1),
          datetime(1970, 1, 1, 13, 59), datetime(1970, 1, 1, 14), datetime(2026, 11, 25, 9),
          datetime(2200, 12, 31, 9, 59), datetime(2200, 12, 31, 23, 59, 59, 999999),
          datetime(2201, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)]
_NAIVE = st.one_of(
    st.sampled_from(_EDGES),
    st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)]),
    st.datetimes(datetime(1969, 12, 30), datetime(1970, 1, 2)),
    st.datetimes(datetime(2200, 12, 30), datetime(2201, 1, 2)),
    st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1)),
    st.datetimes(),  # years 1 to 9999
)
# The moments that overflowed the calendar before they were bounded, and the bounds.
DANGER = st.sampled_from([
    "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999+00:00", "0001-01-01T00:00:00Z", "9999-12-31T10:00:00+14:00",
    "1969-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z", "1970-01-01T13:59:59+14:00",
    "2200-12-31T23:59:59.999999Z", "2200-12-31T10:00:00-14:00", "2201-01-01T00:00:00Z"])
MOMENTS = st.one_of(
    DANGER,
    st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), _NAIVE, _OFFSETS),
    _NAIVE.map(lambda d: d.isoformat() + "Z"),
    _NAIVE.map(datetime.isoformat),  # naive: refused
    st.sampled_from(["9999-12-31T24:00:00Z", "0000-01-01T00:00:00Z", "2026-13-01T00:00:00Z",
                     "2026-11-25T10:00:00+14:01", "2026-11-25T10:00:00+24:00", "", "now",
                     "+275760-09-13T00:00:00Z", "2026-11-25"]),
)
_DAYS = st.one_of(
    st.sampled_from([date(1, 1, 1), date(1969, 12, 31), date(1970, 1, 1), date(2200, 12, 31),
                     date(2201, 1, 1), date(9999, 12, 31)]),
    st.dates(date(2026, 11, 1), date(2027, 6, 1)),
    st.dates(),
)
DAYS = st.one_of(_DAYS.map(date.isoformat),
                 st.sampled_from(["9999-12-32", "0000-01-01", "2026-02-29", "26-1-1", ""]))
ODD = ["\x00", "a\x00b", "\ud800", "x\udfffy", "\u202eevil", "\ufeffbom", "\u200b", "e\u0301",
       "\U0001f600" * 60, "\x1b[31mred", "line\r\nbreak", "\t", " ", "", "null", "0",
       "Robert'); DROP TABLE events;--", "%00", "\\u0000", "𝕄𝕒𝕪𝕒", "\u0301" * 300]
TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(ODD),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "\U0001f600", "\u0301", " "]),
              st.sampled_from([199, 200, 201, 254, 255, 2000, 2001, 20_000, 70_000])),
)


def nested(depth: int) -> Any:
    """Arrays and objects nested ``depth`` deep."""
    value: Any = "deep"
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


DEEP = st.sampled_from([3, 31, 32, 33, 200]).map(nested)  # json.dumps recurses: 200 at most
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(
    allow_nan=False, allow_infinity=False), TEXTS, DEEP, st.just([]), st.just({}))


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _object(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """The object a body schema describes (an optional body is `anyOf: [object, null]`)."""
    schema = _resolve(schema, document)
    for branch in schema.get("anyOf", []):
        if _resolve(branch, document).get("type") == "object":
            return _resolve(branch, document)
    return schema


def extreme(schema: dict[str, Any], document: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Extreme values for a JSON schema: dates near and past the bounds and far beyond,
    huge and odd strings, deep nesting, and values of the wrong type."""
    schema = _resolve(schema, document)
    if "anyOf" in schema:
        return st.one_of(*(extreme(s, document) for s in schema["anyOf"]))
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "string" and schema.get("format") == "date-time":
        strategy: st.SearchStrategy[Any] = st.one_of(DANGER, MOMENTS)
    elif kind == "string" and schema.get("format") == "date":
        strategy = st.one_of(st.sampled_from(["9999-12-31", "9999-12-30", "0001-01-01",
                                              "1969-12-31", "1970-01-01", "2200-12-31",
                                              "2201-01-01"]), DAYS)
    elif kind == "string" and "enum" in schema:
        strategy = st.one_of(st.sampled_from(schema["enum"]), TEXTS)
    elif kind == "string":
        strategy = TEXTS
    elif kind in ("number", "integer"):
        strategy = st.one_of(st.sampled_from([0, -1, 0.5, 52, 53, 1e308, -1e308, 2**63]),
                             st.floats(allow_nan=False, allow_infinity=False))
    elif kind == "array":
        item = extreme(schema.get("items", {}), document)
        strategy = st.one_of(st.lists(item, max_size=3),
                             st.lists(item, min_size=49, max_size=60))
    elif kind == "object":
        properties = schema.get("properties", {})
        strategy = st.fixed_dictionaries(
            {}, optional={name: extreme(p, document) for name, p in properties.items()})
    else:
        strategy = JUNK
    return st.one_of(strategy, strategy, strategy, JUNK)  # mostly the right type


def mutated(base: dict[str, Any], schema: dict[str, Any],
            document: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``base`` (a valid body) with up to three of its schema's fields (nested ones too)
    made extreme, so that most examples stay valid enough to reach the engine and the
    calendar; sometimes the whole body is junk or an unknown field is added."""
    fields = _fields(_object(schema, document), document)
    dated = sorted(path for path, sub in fields.items() if _dated(sub, document))

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        body = json.loads(json.dumps(base))
        chosen = st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True) if fields \
            else st.just([])
        if dated and draw(st.booleans()):  # dates are what overflowed the calendar
            chosen = st.lists(st.sampled_from(dated), min_size=1, max_size=2, unique=True)
        for path in draw(chosen):
            target = body
            for part in path[:-1]:
                target = target.setdefault(part, {}) if isinstance(target, dict) else {}
            if isinstance(target, dict):
                target[path[-1]] = draw(extreme(fields[path], document))
        if draw(st.integers(0, 9)) == 0:
            body[draw(st.sampled_from(["x", "\x00", "🙂", "a" * 300]))] = draw(JUNK)
        return body

    return st.one_of(build(), build(), build(), build(), JUNK)


def _dated(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    schema = _resolve(schema, document)
    branches = [_resolve(b, document) for b in schema.get("anyOf", [schema])]
    return any(b.get("format") in ("date", "date-time") for b in branches)


def _fields(schema: dict[str, Any], document: dict[str, Any],
            prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], dict[str, Any]]:
    found = {}
    for name, sub in schema.get("properties", {}).items():
        found[(*prefix, name)] = sub
        resolved = _resolve(sub, document)
        if resolved.get("type") == "object" and len(prefix) < 2:
            found.update(_fields(resolved, document, (*prefix, name)))
    return found


# -- the app, on a SQLite file: one per module, as for schemathesis --------------------------


@dataclass
class Fuzzed:
    client: TestClient
    candidacies: Candidacies
    actor: Actor
    document: dict[str, Any]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    path: Path = tmp_path_factory.mktemp("extreme") / "closer.db"
    url = f"sqlite:///{path}"
    candidacies = Candidacies(eventsourcing_env(url), clock=FixedClock(NOW))
    app = create_app(Settings(database_url=url), candidacies=candidacies)
    token = create_token(candidacies, workspace="agency", role="recruiter")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        document = client.get("/openapi.json").json()
        actor = Actor(user="recruiter@agency", workspace="agency")
        yield Fuzzed(client, candidacies, actor, document)
    candidacies.close()


PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

# Where each command starts, and a valid body for it (from the HTTP command tests).
STARTS = {path: (start, body or {}) for path, body, start, *_ in COMMANDS}
STARTS["rounds"] = ("advanced", {"interviewed_at": "2026-11-25T09:00:00+00:00"})
STARTS["replies"] = ("awaiting", {"kind": "out_of_office", "note": "back soon"})  # back_on



def _post(client: TestClient, url: str, body: Any) -> Any:
    # json.dumps escapes lone surrogates (\ud800), as a hostile client may send them.
    return client.post(url, content=json.dumps(body).encode(), headers=JSON)


def _no_server_error(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text


def _calendar_still_answers(fuzzed: Fuzzed, candidacy_id: str) -> None:
    """What the calendar computes from what was accepted: the view (next due step), the
    agenda of the days around it, and the scheduler deciding for now and for the due day."""
    view = fuzzed.client.get(f"/candidacies/{candidacy_id}")
    _no_server_error(view)
    _no_server_error(fuzzed.client.get(f"/candidacies/{candidacy_id}/events"))
    due = (view.json().get("next_due") or {}).get("due_at")
    days = {NOW.date()}
    if due:
        moment = datetime.fromisoformat(due)
        days |= {(moment + timedelta(days=d)).date() for d in (-1, 0, 1)}
        fuzzed.candidacies.apply_policy(candidacy_id, min(max(moment, EARLIEST), LATEST))
    fuzzed.candidacies.apply_policy(candidacy_id, NOW)
    for day in days:
        _no_server_error(fuzzed.client.get("/agenda", params={"on": day.isoformat()}))


@pytest.mark.parametrize("path", sorted(STARTS))
def test_every_command_survives_extreme_bodies(path: str, fuzzed: Fuzzed) -> None:
    route = "/candidacies/{candidacy_id}/" + path.replace("r1h1", "{hesitation_id}")
    operation = fuzzed.document["paths"][route]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    start, base = STARTS[path]

    @given(body=mutated(base, schema, fuzzed.document))
    @PROPERTY
    def check(body: Any) -> None:
        stage = "interviewed" if start == "hesitation" else start
        stage = "awaiting" if start == "paused" else stage
        candidacy_id = candidacy_at(fuzzed.candidacies, fuzzed.actor, stage,
                                    hesitation=start == "hesitation", paused=start == "paused")
        response = _post(fuzzed.client, f"/candidacies/{candidacy_id}/{path}", body)
        _no_server_error(response)
        if response.status_code < 300:
            _calendar_still_answers(fuzzed, candidacy_id)

    check()


ZONES = ["Europe/London", "Pacific/Kiritimati", "Etc/GMT+12", "Pacific/Pago_Pago",
         "Asia/Kathmandu", "Australia/Lord_Howe", "America/Sao_Paulo", "Africa/Casablanca"]


def test_recording_an_interview_survives_extreme_bodies(fuzzed: Fuzzed) -> None:
    operation = fuzzed.document["paths"]["/candidacies"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    base = interview(interviewers=PANEL)

    @given(body=mutated(base, schema, fuzzed.document), zone=st.sampled_from(ZONES),
           country=st.sampled_from(["GB", "US", "BR", "NZ", None]))
    @PROPERTY
    def check(body: Any, zone: str, country: str | None) -> None:
        if isinstance(body, dict) and body.get("timezone") == base["timezone"]:
            body = {**body, "timezone": zone, "country": country}
        response = _post(fuzzed.client, "/candidacies", body)
        _no_server_error(response)
        if response.status_code < 300:
            _calendar_still_answers(fuzzed, response.json()["id"])

    check()


def _query_values(schema: dict[str, Any], document: dict[str, Any]) -> st.SearchStrategy[str]:
    values = extreme(schema, document).filter(lambda v: not isinstance(v, (dict, list)))
    # At most 3,000 characters: httpx (like servers) refuses longer request lines.
    return values.map(lambda v: (v if isinstance(v, str) else json.dumps(v))[:3000])


@pytest.mark.parametrize("route", ["/candidacies", "/candidacies/{candidacy_id}",
                                   "/candidacies/{candidacy_id}/events",
                                   "/candidacies/{candidacy_id}/messages", "/events",
                                   "/agenda"])
def test_every_read_survives_extreme_query_and_path_values(route: str, fuzzed: Fuzzed) -> None:
    operation = fuzzed.document["paths"][route]["get"]
    parameters = [p for p in operation.get("parameters", []) if p["in"] in ("query", "path")]
    strategies = {p["name"]: _query_values(p["schema"], fuzzed.document) for p in parameters}
    known = candidacy_at(fuzzed.candidacies, fuzzed.actor, "awaiting")

    @given(values=st.fixed_dictionaries({}, optional=strategies), keep_id=st.booleans())
    @PROPERTY
    def check(values: dict[str, str], keep_id: bool) -> None:
        url = route
        if "{candidacy_id}" in route:
            value = known if keep_id or "candidacy_id" not in values else values["candidacy_id"]
            url = route.replace("{candidacy_id}", quote(
                value.encode("utf-8", "surrogatepass"), safe="") or "x")
        query = "&".join(f"{name}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
                         for name, v in values.items() if f"{{{name}}}" not in route)
        _no_server_error(fuzzed.client.get(url + ("?" + query if query else "")))

    check()


# -- the bounds, exactly -----------------------------------------------------------------------

OUT_OF_RANGE = ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00",
                "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59+14:00",
                "1969-12-31T23:59:59+00:00", "1970-01-01T13:59:59+14:00",
                "2200-12-31T10:00:00-14:00", "2201-01-01T00:00:00+00:00"]

# (command path, body, the moment or date field): each names its field when refused.
DATED = [
    ("", "interviewed_at", {}),
    ("hesitations", "occurred_at", {"text": "On-call?"}),
    ("next-step", "scheduled_for", {"description": "Onsite"}),
    ("replies", "received_at", {"kind": "update"}),
    ("offers", "deadline", {"company": "Globex"}),
    ("offers", "noted_at", {"company": "Globex", "deadline": "2026-12-10T17:00:00+00:00"}),
    ("rounds", "interviewed_at", {}),
]
START = {"": None, "hesitations": "interviewed", "next-step": "hesitations_addressed",
         "replies": "awaiting", "offers": "awaiting", "rounds": "advanced",
         "pause": "awaiting"}


def _at(fuzzed: Fuzzed, path: str) -> str:
    if not path:
        return "/candidacies"
    candidacy_id = candidacy_at(fuzzed.candidacies, fuzzed.actor, START[path])
    return f"/candidacies/{candidacy_id}/{path}"


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
@pytest.mark.parametrize(("path", "field", "body"), DATED)
def test_a_moment_out_of_range_is_a_422_naming_its_field(
        path: str, field: str, body: dict[str, Any], moment: str, fuzzed: Fuzzed) -> None:
    data = interview(interviewers=PANEL, **{field: moment}) if not path else {
        **body, field: moment}
    refused = problem(_post(fuzzed.client, _at(fuzzed, path), data), 422, "invalid-input")

    assert refused["field"] == field
    assert "between 1970-01-01 and 2200-12-31" in refused["reason"] or \
        "time zone" in refused["reason"]


@pytest.mark.parametrize(("path", "field", "body"), [
    ("", "applied_on", {}),
    ("pause", "until", {"reason": "travelling"}),
    ("replies", "back_on", {"kind": "out_of_office"}),
])
@pytest.mark.parametrize("day", ["0001-01-01", "1969-12-31", "2201-01-01", "9999-12-31"])
def test_a_date_out_of_range_is_a_422_naming_its_field(
        path: str, field: str, body: dict[str, Any], day: str, fuzzed: Fuzzed) -> None:
    data = interview(interviewers=PANEL, **{field: day}) if not path else {**body, field: day}
    refused = problem(_post(fuzzed.client, _at(fuzzed, path), data), 422, "invalid-input")

    assert refused["field"] == field
    assert refused["reason"] == "must be between 1970-01-01 and 2200-12-31 (UTC)"


@pytest.mark.parametrize(("path", "field", "body", "value"), [
    ("", "interviewed_at", {}, "2200-12-31T23:59:59.999999+00:00"),
    ("", "interviewed_at", {}, "1970-01-01T14:00:00+14:00"),
    ("", "applied_on", {}, "1970-01-01"),
    ("next-step", "scheduled_for", {"description": "Onsite"}, "2200-12-31T09:59:59-14:00"),
    ("offers", "deadline", {"company": "Globex"}, "2200-12-31T23:59:59+00:00"),
    ("rounds", "interviewed_at", {}, "2200-12-31T23:59:59+14:00"),
    ("pause", "until", {"reason": "travelling"}, "2200-12-31"),
    ("replies", "back_on", {"kind": "out_of_office"}, "2200-12-31"),
])
def test_the_bounds_themselves_are_accepted_and_the_calendar_copes(
        path: str, field: str, body: dict[str, Any], value: str, fuzzed: Fuzzed) -> None:
    data = interview(interviewers=PANEL, timezone="Pacific/Kiritimati", country=None,
                     **{field: value}) if not path else {**body, field: value}
    response = ok(_post(fuzzed.client, _at(fuzzed, path), data))
    candidacy_id = response.json()["id"]

    _calendar_still_answers(fuzzed, candidacy_id)
    ok(fuzzed.client.get(f"/candidacies/{candidacy_id}"))


def test_a_fact_dated_at_the_lower_bound_is_refused_as_before_the_interview(
        fuzzed: Fuzzed) -> None:
    """In range, but a fact cannot predate the interview it follows: a clear 422 that
    names the field, not an overflow (the lower bound itself is taken by interviews)."""
    candidacy_id = ok(_post(fuzzed.client, _at(fuzzed, ""), interview(
        interviewers=PANEL, timezone="Pacific/Kiritimati", country=None))).json()["id"]
    response = _post(fuzzed.client, f"/candidacies/{candidacy_id}/offers",
                     {"company": "Globex", "deadline": "2026-12-10T17:00:00+00:00",
                      "noted_at": "1970-01-01T00:00:00-00:00"})

    refused = problem(response, 422, "invalid-input")
    assert "before the interview" in refused["reason"]


@pytest.mark.parametrize(("on", "status"), [
    ("1970-01-01", 200), ("2200-12-31", 200), ("1969-12-31", 422), ("2201-01-01", 422),
    ("0001-01-01", 422), ("9999-12-31", 422), ("9999-12-30", 422)])
def test_the_agenda_day_is_bounded(on: str, status: int, fuzzed: Fuzzed) -> None:
    candidacy_at(fuzzed.candidacies, fuzzed.actor, "awaiting")
    response = fuzzed.client.get("/agenda", params={"on": on})

    assert response.status_code == status, response.text
    if status == 422:
        refused = problem(response, 422, "invalid-input")
        assert (refused["field"], refused["errors"][0]["location"]) == ("on", "query")
        assert "between 1970-01-01 and 2200-12-31" in refused["reason"]


@given(moment=st.datetimes(timezones=_OFFSETS))
@settings(max_examples=300, deadline=None, database=None, derandomize=True)
def test_a_moment_is_accepted_exactly_when_its_instant_is_in_range(moment: datetime) -> None:
    data = interview(interviewed_at=moment.isoformat())
    inside = EARLIEST <= moment <= LATEST
    try:
        details = validated(NewCandidacy, data)
    except InvalidInput as refused:
        assert not inside and refused.field == "interviewed_at", (moment, refused)
    else:
        assert inside
        details.interviewed_at.astimezone(UTC)  # and any zone's view of it is computable


# -- bodies: size, media type, depth -----------------------------------------------------------


@sqlite_only
def test_a_body_past_the_limit_is_a_413_with_content_length(client: TestClient) -> None:
    candidacy_id = candidacy_id_of(client)
    huge = json.dumps({"text": "x" * LIMIT}).encode()

    refused = problem(client.post(f"/candidacies/{candidacy_id}/hesitations", content=huge,
                                  headers=JSON), 413, "content-too-large")

    assert refused["limit"] == LIMIT
    assert len(ok(client.get(f"/candidacies/{candidacy_id}/events")).json()["events"]) == 1
    at_limit = json.dumps({"text": "x" * 2001}).encode().ljust(LIMIT)
    problem(client.post(f"/candidacies/{candidacy_id}/hesitations", content=at_limit,
                        headers=JSON), 422, "invalid-input")  # read: too long a text


@sqlite_only
def test_a_streamed_body_is_counted_as_it_arrives(client: TestClient) -> None:
    candidacy_id = candidacy_id_of(client)

    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(total // 1024):
            yield b"x" * 1024
        yield b'"}'

    refused = problem(client.post(f"/candidacies/{candidacy_id}/hesitations",
                                  content=chunks(LIMIT), headers=JSON), 413, "content-too-large")
    assert refused["limit"] == LIMIT
    small = ok(client.post(f"/candidacies/{candidacy_id}/hesitations", content=chunks(1024),
                           headers=JSON))
    assert small.json()["hesitation_id"] == "r1h1"


def candidacy_id_of(client: TestClient) -> str:
    response = ok(client.post("/candidacies", json=interview(interviewers=PANEL)))
    return str(response.json()["id"])


async def _unreachable() -> dict[str, Any]:
    raise AssertionError("the body was read")


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/candidacies", "headers": headers,
            "query_string": b"", "http_version": "1.1", "scheme": "http",
            "server": ("testserver", 80), "client": ("127.0.0.1", 1), "root_path": ""}


async def _route(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the route ran")


def test_a_declared_length_past_the_limit_is_refused_before_any_byte_is_read() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    limits = BodyLimits(_route, max_bytes=LIMIT, max_depth=32)
    asyncio.run(limits(_scope([(b"content-length", b"20000000"),
                               (b"content-type", b"application/json")]), _unreachable, send))

    assert sent[0]["status"] == 413
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["type"] == "urn:closer:problem:content-too-large"


def test_a_stream_without_length_is_read_only_up_to_the_limit() -> None:
    reads = 0

    async def endless() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"[" * 4096, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    limits = BodyLimits(_route, max_bytes=LIMIT, max_depth=32)
    asyncio.run(limits(_scope([(b"content-type", b"application/json"),
                               (b"transfer-encoding", b"chunked")]), endless, send))

    assert sent[0]["status"] == 413
    assert reads == LIMIT // 4096 + 1


def test_a_real_server_answers_413_to_a_20_mb_declaration_without_the_body(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/closer.db"
    candidacies = Candidacies(eventsourcing_env(url), clock=FixedClock(NOW))
    app = create_app(Settings(database_url=url), candidacies=candidacies)
    try:
        with LiveServer(app) as server:
            host, port = server.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as conn:
                conn.sendall(b"POST /candidacies HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Type: application/json\r\n"
                             b"Content-Length: 20000000\r\n\r\n{\"candidate\": ")
                answer = b""
                while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
    finally:
        candidacies.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"application/problem+json" in head.lower()
    assert json.loads(body)["limit"] == LIMIT


@sqlite_only
def test_the_limit_is_a_setting(candidacies: Candidacies, database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, max_body_bytes=2048),
                     candidacies=candidacies)
    token = create_token(candidacies, workspace="agency", role="recruiter")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        body = interview(interviewers=PANEL, company="x" * 150, role="y" * 150)
        body["interviewers"] = [{"name": f"Person {n}", "title": "z" * 100} for n in range(12)]
        refused = problem(client.post("/candidacies", json=body), 413, "content-too-large")
    assert refused["limit"] == 2048


@sqlite_only
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml",
                                          "application/jsonx", None])
def test_a_body_that_is_not_declared_json_is_a_415(client: TestClient,
                                                    content_type: str | None) -> None:
    candidacy_id = candidacy_id_of(client)
    headers = {"Content-Type": content_type} if content_type else {}

    refused = problem(client.post(f"/candidacies/{candidacy_id}/hesitations",
                                  content=b'{"text": "On-call?"}', headers=headers),
                      415, "unsupported-media-type")
    assert "application/json" in refused["detail"]
    assert len(ok(client.get(f"/candidacies/{candidacy_id}/events")).json()["events"]) == 1


@sqlite_only
@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/problem+json"])
def test_json_in_any_of_its_spellings_is_accepted(client: TestClient, content_type: str) -> None:
    candidacy_id = candidacy_id_of(client)
    ok(client.post(f"/candidacies/{candidacy_id}/hesitations", content=b'{"text": "On-call?"}',
                   headers={"Content-Type": content_type}))


@sqlite_only
def test_a_command_without_a_body_still_needs_no_content_type(client: TestClient) -> None:
    candidacy_id = candidacy_id_of(client)
    ok(client.post(f"/candidacies/{candidacy_id}/no-hesitations"))


@sqlite_only
@pytest.mark.parametrize("body", [
    json.dumps({"text": nested(33)}).encode(),
    json.dumps({"text": "x", "on_behalf_of": nested(40)}).encode(),
    b"[" * 60_000,  # unclosed, but already too deep
    b'{"text": ' + b"[{" * 20 + b"1" + b"}]" * 20 + b"}",
])
def test_json_nested_too_deeply_is_a_422_naming_the_body(client: TestClient,
                                                          body: bytes) -> None:
    candidacy_id = candidacy_id_of(client)

    refused = problem(client.post(f"/candidacies/{candidacy_id}/hesitations", content=body,
                                  headers=JSON), 422, "invalid-input")
    assert refused["field"] == "body"
    assert refused["reason"] == "JSON nested deeper than 32 levels"


@sqlite_only
def test_nesting_within_the_limit_and_brackets_in_strings_pass_the_door(
        client: TestClient) -> None:
    candidacy_id = candidacy_id_of(client)
    within = problem(_post(client, f"/candidacies/{candidacy_id}/hesitations",
                           {"text": nested(31)}), 422, "invalid-input")
    assert within["field"] == "text"  # the model, not the door, refused it
    brackets = ok(_post(client, f"/candidacies/{candidacy_id}/hesitations",
                        {"text": "[[[{{{" * 100 + '"\\'}))
    assert brackets.json()["hesitation_id"] == "r1h1"


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ ab'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(alphabet='[]{}"\\ ab', max_size=4), inner, max_size=3),
    max_leaves=60)


@given(value=_JSON_VALUES, limit=st.integers(0, 12))
@settings(max_examples=300, deadline=None, database=None, derandomize=True)
def test_the_depth_check_agrees_with_the_parsed_json(value: Any, limit: int) -> None:
    text = json.dumps(value).encode()
    assert nested_deeper_than(text, limit) == (_depth(value) > limit)


def test_a_prefix_of_unclosed_brackets_counts_as_deep() -> None:
    assert nested_deeper_than(b'{"a": [[[[', 4)
    assert not nested_deeper_than(b'{"a": [[[', 4)
    assert max(accumulate([1, 1, -1])) == 2  # the reference the check is built on


def test_the_command_routes_document_413_and_415(fuzzed: Fuzzed) -> None:
    for path, methods in fuzzed.document["paths"].items():
        for method, operation in methods.items():
            if method == "post":
                assert {"413", "415", "422"} <= set(operation["responses"]), path
                assert list(operation["responses"]["413"]["content"]) == [
                    "application/problem+json"]


# -- odd text reaches neither store as a server error -------------------------------------------


@pytest.mark.parametrize("odd", ["a\x00b", "\x1b[31m", "\x7f"])
def test_control_characters_in_names_and_texts_are_a_422(client: TestClient, odd: str) -> None:
    refused = problem(_post(client, "/candidacies", interview(
        candidate={"name": f"Maya{odd}", "email": "maya@example.com"})), 422, "invalid-input")
    assert refused["field"] == "candidate.name"
    candidacy_id = candidacy_id_of(client)
    refused = problem(_post(client, f"/candidacies/{candidacy_id}/hesitations",
                            {"text": f"On{odd}call"}), 422, "invalid-input")
    assert refused["field"] == "text"
    ok(_post(client, f"/candidacies/{candidacy_id}/hesitations", {"text": "On\tcall\r\nok"}))


@pytest.mark.parametrize("query", ["q=a%00b", "cursor=a%00", "q=%ED%A0%80", "q=" + "é" * 201])
def test_odd_query_text_is_a_422_not_a_store_error(client: TestClient, query: str) -> None:
    response = client.get(f"/candidacies?{query}")
    if "%ED" in query:
        assert response.status_code == 200  # an undecodable byte is replaced, then searched
    else:
        problem(response, 422, "invalid-input")


@sqlite_only
def test_an_email_longer_than_smtp_allows_is_refused_before_its_pattern(
        client: TestClient) -> None:
    email = "a@" + ".a" * 30_000 + " "  # would take the pattern quadratic time
    refused = problem(_post(client, "/candidacies", interview(
        candidate={"name": "Maya", "email": email})), 422, "invalid-input")
    assert refused["field"] == "candidate.email"


# -- the command line shares the bounds --------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CLOSER_DATABASE_URL", f"sqlite:///{tmp_path}/closer.db")
    monkeypatch.setenv("CLOSER_LOG_LEVEL", "error")
    get_settings.cache_clear()
    candidacies = Candidacies(eventsourcing_env(f"sqlite:///{tmp_path}/closer.db"),
                              clock=FixedClock(NOW))
    candidacy_at(candidacies, Actor(user="coach", workspace="agency"), "awaiting")
    candidacies.close()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize(("args", "option"), [
    (["tick", "--now", "9999-12-31T23:59:59-14:00"], "--now"),
    (["tick", "--now", "0001-01-01T00:00:00+14:00"], "--now"),
    (["tick", "--now", "2201-01-01T00:00:00+00:00"], "--now"),
    (["replay", "-p", "default", "--until", "0001-01-01"], "--until"),
    (["replay", "-p", "default", "--until", "9999-12-31T23:59:59-14:00"], "--until"),
    (["replay", "-p", "default", "--since", "1969-12-31"], "--since"),
    (["tune", "--vary", "max_nudges=1..2", "--until", "9999-12-31"], "--until"),
    (["simulate", "--candidacies", "1", "--start", "2200-06-01"], "--start"),
    (["simulate", "--candidacies", "1", "--start", "0001-01-01"], "--start"),
])
def test_the_cli_refuses_moments_out_of_range_in_one_line(store: Path, args: list[str],
                                                          option: str) -> None:
    result = runner.invoke(cli, args)

    assert result.exit_code == 1, result.output
    assert result.output.startswith("error:") and option in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("moment", "nudges"), [
    (LATEST, 0),  # due, but 23:59 in London: outside the hours a nudge goes out
    (datetime(2200, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=14))), 1),  # 09:59 UTC
    (EARLIEST, 0),  # nothing due yet
])
def test_the_scheduler_ticks_at_the_bounds(store: Path, moment: datetime, nudges: int) -> None:
    candidacies = Candidacies(eventsourcing_env(f"sqlite:///{store}/closer.db"),
                              clock=FixedClock(NOW))
    try:
        report = tick(candidacies, moment)  # the calendar reaches the bound without overflow
        again = tick(candidacies, moment)
    finally:
        candidacies.close()

    assert report.now == moment
    assert report.candidacies == (1 if moment > NOW else 0)
    assert report.actions.get("nudge", 0) == nudges
    assert sum(again.actions.values()) == 0
