"""The cadence policy: defaults encode the playbook, bad files are refused clearly."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from api.policy_cli import policy_app
from api.settings import get_settings
from conftest import memory_url
from engine.errors import CloserError
from engine.policy import (
    DEFAULT_POLICY_PATH,
    CadencePolicy,
    Channel,
    Medium,
    MessageKind,
    PolicyChange,
    PolicyError,
    Weekday,
    default_policy,
    diff_policies,
    load_policy,
    parse_policy,
    policy_from_dict,
    policy_to_toml,
    slip_after_pause,
)

IDENTITY = {"name", "version", "description"}


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refusal(tmp_path: Path, body: str) -> PolicyError:
    """Load a named, versioned policy file with ``body`` and return the refusal."""
    path = write(tmp_path, 'name = "agency"\nversion = 1\n' + body)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    return caught.value


# ---------------------------------------------------------------- defaults encode the playbook


def test_default_policy_is_the_playbook_version_1() -> None:
    policy = default_policy()
    assert (policy.name, policy.version) == ("playbook", 1)


def test_shipped_toml_equals_the_model_defaults() -> None:
    shipped = default_policy().model_dump(exclude=IDENTITY)
    model = CadencePolicy(name="playbook", version=1).model_dump(exclude=IDENTITY)
    assert shipped == model


def test_shipped_toml_spells_out_every_field() -> None:
    def leaves(data: dict[str, Any], prefix: str = "") -> set[str]:
        found: set[str] = set()
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else key
            found |= leaves(value, path) if isinstance(value, dict) else {path}
        return found

    with DEFAULT_POLICY_PATH.open("rb") as handle:
        raw = tomllib.load(handle)
    assert leaves(raw) == leaves(default_policy().model_dump(mode="json"))


def test_thank_you_is_due_by_the_end_of_the_interview_day() -> None:
    rule = default_policy().thank_you
    assert rule.deadline_days_after_interview == 0
    assert rule.deadline_local_time == time(23, 59, 59)


def test_card_preferred_then_email_then_voicemail_followed_by_email() -> None:
    rule = default_policy().thank_you
    assert rule.media == (Medium.CARD, Medium.EMAIL, Medium.VOICEMAIL)
    assert 0 <= rule.email_after_voicemail_within_minutes <= 10


def test_same_day_deadline_beats_the_send_window() -> None:
    assert default_policy().thank_you.within_send_window is False


def test_a_nudge_is_a_voicemail_then_an_email_minutes_later() -> None:
    policy = default_policy()
    assert policy.nudge.channels == (Channel.VOICEMAIL, Channel.EMAIL)
    assert 0 < policy.nudge.channel_gap_minutes <= 15
    assert policy.routing.nudge_due == (MessageKind.NUDGE_VOICEMAIL, MessageKind.NUDGE_EMAIL)


def test_patience_no_nudge_before_the_early_end_of_the_stated_timeline() -> None:
    patience = default_policy().patience
    assert patience.first_nudge_after_timeline_min_business_days == 0
    assert patience.first_nudge_without_timeline_business_days == 7
    assert patience.window_without_timeline_weeks == 4


def test_persistent_but_not_a_pest() -> None:
    policy = default_policy()
    assert policy.pest_line.max_nudges == 3
    assert policy.nudge.spacing_business_days == 5


def test_stall_needs_a_grace_period_after_the_timeline() -> None:
    assert default_policy().stall.grace_business_days == 5


def test_follow_up_request_nudges_sooner_and_more_often() -> None:
    policy = default_policy()
    assert policy.follow_up.first_nudge_after_business_days < (
        policy.patience.first_nudge_without_timeline_business_days
    )
    assert policy.follow_up.spacing_business_days < policy.nudge.spacing_business_days
    assert policy.follow_up.max_nudges > policy.pest_line.max_nudges


def test_competing_offer_gets_one_nudge_well_before_its_deadline() -> None:
    offer = default_policy().competing_offer
    assert offer.nudge_business_days_before_deadline == 3
    assert offer.counts_toward_pest_line is False


def test_send_window_is_office_hours_and_quiet_hours_cover_the_night() -> None:
    policy = default_policy()
    assert (policy.send_window.start, policy.send_window.end) == (time(9), time(17))
    assert (policy.quiet_hours.start, policy.quiet_hours.end) == (time(20), time(8))


def test_working_week_is_monday_to_friday_and_holidays_are_honoured() -> None:
    policy = default_policy()
    assert policy.working_week.days == (
        Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI,
    )
    assert policy.working_week.weekday_numbers == (0, 1, 2, 3, 4)
    assert policy.holidays.honour is True


def test_routing_maps_every_trigger_to_its_message() -> None:
    routing = default_policy().routing
    assert routing.kinds_for("next_step_closed") == (MessageKind.THANK_YOU,)
    assert routing.kinds_for("thank_you_due") == (MessageKind.REMINDER_THANK_YOU_DUE,)
    assert routing.kinds_for("thank_you_overdue") == (MessageKind.ALERT_OVERDUE,)
    assert routing.kinds_for("offer_deadline_near") == (MessageKind.OFFER_NUDGE,)
    assert routing.kinds_for("stalled") == (MessageKind.ALERT_STALLED,)
    assert routing.kinds_for("next_step_tomorrow") == (MessageKind.REMINDER_NEXT_STEP,)
    with pytest.raises(KeyError, match="unknown trigger 'bogus'"):
        routing.kinds_for("bogus")


def test_out_of_office_pauses_the_cadence() -> None:
    pause = default_policy().pause
    assert pause.out_of_office_pauses is True
    assert pause.no_return_date_business_days == 5


def test_policy_is_frozen() -> None:
    policy = default_policy()
    with pytest.raises(ValidationError, match="frozen"):
        policy.pest_line.max_nudges = 99  # type: ignore[misc]


def test_policy_calendar_uses_its_working_week_and_holidays() -> None:
    calendar = default_policy().work_calendar("US")
    assert calendar.working_days == (0, 1, 2, 3, 4)
    assert calendar.honour_holidays is True
    assert calendar is default_policy().work_calendar("us")


# ---------------------------------------------------------------- the slip rule


PAUSED = datetime(2026, 5, 4, 9, tzinfo=UTC)
RESUMED = datetime(2026, 5, 11, 9, tzinfo=UTC)


def test_pause_slip_shifts_later_steps_by_the_paused_duration() -> None:
    due = datetime(2026, 5, 6, 10, tzinfo=UTC)
    assert slip_after_pause(due, PAUSED, RESUMED) == due + (RESUMED - PAUSED)


def test_pause_slip_fires_an_overdue_step_once_at_resume() -> None:
    overdue = datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert slip_after_pause(overdue, PAUSED, RESUMED) == RESUMED


def test_pause_slip_never_bunches_steps_together() -> None:
    first = datetime(2026, 5, 5, 10, tzinfo=UTC)
    second = first + timedelta(days=7)
    slipped = [slip_after_pause(step, PAUSED, RESUMED) for step in (first, second)]
    assert slipped[1] - slipped[0] == second - first
    assert all(step >= RESUMED for step in slipped)


def test_pause_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        slip_after_pause(PAUSED, RESUMED, PAUSED)


@settings(deadline=None)
@given(
    due_hours=st.integers(min_value=-500, max_value=500),
    pause_hours=st.integers(min_value=0, max_value=500),
)
def test_pause_slip_never_fires_during_the_pause(due_hours: int, pause_hours: int) -> None:
    resumed = PAUSED + timedelta(hours=pause_hours)
    due = PAUSED + timedelta(hours=due_hours)
    slipped = slip_after_pause(due, PAUSED, resumed)
    assert slipped >= resumed
    assert slipped >= due


# ---------------------------------------------------------------- refusals name file, field, reason


def test_postal_mail_is_refused_for_the_thank_you(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[thank_you]\nmedia = ["card", "postal"]\n')
    assert error.field == "thank_you.media[1]"
    assert "postal mail is never used" in error.reason
    assert str(tmp_path / "policy.toml") in str(error)


@pytest.mark.parametrize("word", ["mail", "Postal", "letter"])
def test_every_spelling_of_postal_mail_is_refused(tmp_path: Path, word: str) -> None:
    error = refusal(tmp_path, f'[thank_you]\nmedia = ["{word}"]\n')
    assert "postal mail is never used" in error.reason


def test_postal_mail_is_never_a_nudge_channel(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[nudge]\nchannels = ["mail"]\n')
    assert error.field == "nudge.channels[0]"
    assert "postal mail is never a nudge channel" in error.reason


def test_unknown_medium_lists_the_choices(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[thank_you]\nmedia = ["fax"]\n')
    assert error.reason == "unknown medium 'fax'; choose from card, email, voicemail"


def test_unknown_channel_lists_the_choices(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[nudge]\nchannels = ["sms"]\n')
    assert error.reason == "unknown channel 'sms'; choose from voicemail, email"


def test_duplicate_channels_are_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[nudge]\nchannels = ["email", "email"]\n'
                              '[routing]\nnudge_due = ["nudge_email"]\n')
    assert error.field == "nudge.channels"
    assert "'email' twice" in error.reason


def test_no_media_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[thank_you]\nmedia = []\n")
    assert error.field == "thank_you.media"


def test_spacing_zero_is_refused_with_the_field_named(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[nudge]\nspacing_business_days = 0\n")
    assert error.field == "nudge.spacing_business_days"
    assert error.reason.startswith("must be at least 1 (got 0)")
    expected = f"{tmp_path / 'policy.toml'}: nudge.spacing_business_days: must be at least 1"
    assert expected in str(error)


def test_negative_follow_up_spacing_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[follow_up]\nspacing_business_days = -2\n")
    assert error.field == "follow_up.spacing_business_days"
    assert "got -2" in error.reason


def test_negative_max_nudges_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[pest_line]\nmax_nudges = -1\n")
    assert error.field == "pest_line.max_nudges"


def test_zero_nudges_is_allowed_and_means_never_nudge() -> None:
    policy = policy_from_dict({"name": "shy", "version": 1, "pest_line": {"max_nudges": 0}})
    assert policy.pest_line.max_nudges == 0


def test_offer_nudge_on_the_deadline_day_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[competing_offer]\nnudge_business_days_before_deadline = 0\n")
    assert error.field == "competing_offer.nudge_business_days_before_deadline"
    assert "ultimatum" in error.reason


def test_unknown_field_is_refused_with_file_and_field(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[nudge]\nspacng_business_days = 3\n")
    assert error.field == "nudge.spacng_business_days"
    assert "did you mean 'spacing_business_days'?" in error.reason
    expected = f"{tmp_path / 'policy.toml'}: nudge.spacng_business_days: unknown field"
    assert str(error).startswith(expected)


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[nudges]\nspacing_business_days = 3\n")
    assert error.field == "nudges"
    assert "did you mean 'nudge'?" in error.reason


def test_unknown_routing_trigger_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[routing]\ninterview_done = ["thank_you"]\n')
    assert error.field == "routing.interview_done"


def test_unknown_message_kind_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[routing]\nstalled = ["fireworks"]\n')
    assert error.field == "routing.stalled[0]"
    assert "unknown message kind 'fireworks'" in error.reason


@pytest.mark.parametrize(
    ("body", "field", "expected"),
    [
        ('[nudge]\nspacing_business_days = "five"\n', "nudge.spacing_business_days",
         "expected an integer, got string 'five'"),
        ("[nudge]\nspacing_business_days = 2.5\n", "nudge.spacing_business_days",
         "expected an integer, got float 2.5"),
        ('[holidays]\nhonour = "yes"\n', "holidays.honour",
         "expected true or false, got string 'yes'"),
        ('[nudge]\nchannels = "voicemail"\n', "nudge.channels", "expected an array"),
        ("nudge = 5\n", "nudge", "expected a table [nudge], got integer 5"),
        ('[send_window]\nstart = "nine"\n', "send_window.start", "expected a local time"),
        ('[send_window]\nstart = "25:00"\n', "send_window.start", "expected a local time"),
    ],
)
def test_wrong_types_are_refused(tmp_path: Path, body: str, field: str, expected: str) -> None:
    error = refusal(tmp_path, body)
    assert error.field == field
    assert expected in error.reason


def test_toml_local_times_are_accepted() -> None:
    policy = parse_policy(
        'name = "a"\nversion = 1\n[send_window]\nstart = 08:30:00\nend = 16:00:00\n'
    )
    assert policy.send_window.start == time(8, 30)


def test_quiet_hours_covering_the_whole_day_are_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[quiet_hours]\nstart = "00:00"\nend = "00:00"\n')
    assert error.field == "quiet_hours"
    assert "cover the whole day" in error.reason


def test_empty_send_window_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[send_window]\nstart = "10:00"\nend = "10:00"\n')
    assert error.field == "send_window.end"
    assert "send window is empty" in error.reason


def test_send_window_wrapping_midnight_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[send_window]\nstart = "17:00"\nend = "09:00"\n')
    assert error.field == "send_window.end"
    assert "cannot wrap past midnight" in error.reason


def test_send_window_inside_quiet_hours_is_refused(tmp_path: Path) -> None:
    error = refusal(
        tmp_path,
        '[send_window]\nstart = "09:00"\nend = "17:00"\n'
        '[quiet_hours]\nstart = "08:00"\nend = "18:00"\n',
    )
    assert error.field == "send_window"
    assert "lies entirely inside the quiet hours 08:00-18:00" in error.reason


def test_send_window_partly_in_quiet_hours_is_accepted() -> None:
    policy = policy_from_dict({
        "name": "late", "version": 1,
        "send_window": {"start": "07:00", "end": "17:00"},
        "quiet_hours": {"start": "20:00", "end": "08:00"},
    })
    assert policy.send_window.start == time(7)


def test_empty_working_week_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[working_week]\ndays = []\n")
    assert error.field == "working_week.days"
    assert "at least one working day" in error.reason


def test_unknown_and_duplicate_weekdays_are_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path, '[working_week]\ndays = ["mon", "funday"]\n').field == (
        "working_week.days[1]"
    )
    assert "'mon' twice" in refusal(tmp_path, '[working_week]\ndays = ["mon", "Monday"]\n').reason


def test_routing_must_match_the_nudge_channels(tmp_path: Path) -> None:
    error = refusal(tmp_path, '[nudge]\nchannels = ["email"]\n')
    assert error.field == "routing.nudge_due"
    assert "to match nudge.channels" in error.reason


def test_name_and_version_are_required(tmp_path: Path) -> None:
    path = write(tmp_path, "[nudge]\nspacing_business_days = 3\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert [field for field, _ in caught.value.problems] == ["name", "version"]
    assert all(reason == "is required" for _, reason in caught.value.problems)


def test_version_zero_and_bad_names_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "My Policy!"\nversion = 0\n')
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert [field for field, _ in caught.value.problems] == ["name", "version"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[nudge]\nspacing_business_days = 0\n[pest_line]\nmax_nudges = -1\n")
    fields = [field for field, _ in error.problems]
    assert fields == ["nudge.spacing_business_days", "pest_line.max_nudges"]


def test_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "a"\nversion = = 1\n')
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.field is None
    assert str(caught.value).startswith(f"{path}: invalid TOML")
    assert "line 2" in str(caught.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "absent.toml")


def test_a_directory_is_not_a_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="is a directory"):
        load_policy(tmp_path)


def test_policy_error_is_a_closer_error_and_a_value_error(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[pest_line]\nmax_nudges = -1\n")
    assert isinstance(error, CloserError)
    assert isinstance(error, ValueError)


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "agency"\nversion = 2\n[nudge]\nspacing_business_days = 3\n')
    policy = load_policy(path)
    assert policy.nudge.spacing_business_days == 3
    assert policy.pest_line == default_policy().pest_line


# ---------------------------------------------------------------- round trip and diff


def test_toml_round_trip_gives_back_the_same_policy() -> None:
    policy = default_policy()
    assert parse_policy(policy_to_toml(policy)) == policy


def test_round_trip_keeps_custom_values() -> None:
    custom = policy_from_dict({
        "name": "custom", "version": 7,
        "send_window": {"start": "08:15:30", "end": "18:00"},
        "working_week": {"days": ["sun", "mon", "tue", "wed", "thu"]},
        "nudge": {"channels": ["email", "voicemail"]},
        "routing": {"nudge_due": ["nudge_email", "nudge_voicemail"], "stalled": []},
    })
    again = parse_policy(policy_to_toml(custom))
    assert again == custom
    assert again.send_window.start == time(8, 15, 30)
    assert again.working_week.weekday_numbers == (0, 1, 2, 3, 6)
    assert again.routing.stalled == ()


def test_fingerprint_changes_with_any_rule() -> None:
    base = default_policy()
    stall = base.stall.model_copy(update={"grace_business_days": 6})
    tweaked = base.model_copy(update={"stall": stall})
    assert base.fingerprint() == parse_policy(policy_to_toml(base)).fingerprint()
    assert base.fingerprint() != tweaked.fingerprint()


def test_diff_lists_changed_fields_with_both_values() -> None:
    base = default_policy()
    other = policy_from_dict({
        "name": "playbook", "version": 2, "description": base.description,
        "nudge": {"spacing_business_days": 3},
        "quiet_hours": {"start": "19:00"},
    })
    assert diff_policies(base, other) == [
        PolicyChange("version", 1, 2),
        PolicyChange("nudge.spacing_business_days", 5, 3),
        PolicyChange("quiet_hours.start", "20:00", "19:00"),
    ]
    assert diff_policies(base, base) == []


def test_diff_entries_are_plain_triples() -> None:
    description = default_policy().description
    other = policy_from_dict({"name": "x", "version": 1, "description": description})
    [(field, old, new)] = diff_policies(default_policy(), other)
    assert (field, old, new) == ("name", "playbook", "x")


# ---------------------------------------------------------------- CLI


runner = CliRunner()


def test_cli_show_prints_the_default_policy_as_toml() -> None:
    result = runner.invoke(policy_app, ["show"])
    assert result.exit_code == 0
    assert parse_policy(result.stdout) == default_policy()


def test_cli_show_accepts_a_path(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "agency"\nversion = 3\n')
    result = runner.invoke(policy_app, ["show", str(path)])
    assert result.exit_code == 0
    assert parse_policy(result.stdout).version == 3


def test_cli_show_unknown_name_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    # A name is looked up in the configured store: one in memory, not ./closer.db.
    monkeypatch.setenv("CLOSER_DATABASE_URL", memory_url())
    get_settings.cache_clear()
    try:
        result = runner.invoke(policy_app, ["show", "nonesuch"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "no policy named 'nonesuch'" in result.stderr


def test_cli_check_lists_the_changes_against_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "agency"\nversion = 2\n[pest_line]\nmax_nudges = 2\n')
    result = runner.invoke(policy_app, ["check", str(path)])
    assert result.exit_code == 0
    assert "valid" in result.stdout and "'agency' version 2" in result.stdout
    assert "pest_line.max_nudges" in result.stdout
    assert "nudge.spacing_business_days" not in result.stdout


def test_cli_check_refuses_an_invalid_file_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "agency"\nversion = 2\n[nudge]\nspacing_business_days = 0\n')
    result = runner.invoke(policy_app, ["check", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: nudge.spacing_business_days: must be at least 1")
    assert "Traceback" not in result.output


def test_cli_check_missing_file_exits_1() -> None:
    result = runner.invoke(policy_app, ["check", "/nonexistent/policy.toml"])
    assert result.exit_code == 1
    assert "no such policy file" in result.stderr
