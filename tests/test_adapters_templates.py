"""Templates: strict variables, shipped defaults, workspace overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from adapters_fixtures import make_context

from adapters.errors import TemplateError
from adapters.rendering import Renderer, names

DEFAULTS = Path(__file__).resolve().parents[1] / "adapters" / "templates"
SHIPPED = [
    ("thank_you", "email"), ("thank_you", "card"), ("thank_you", "voicemail"),
    ("nudge_voicemail", "voicemail"), ("nudge_email", "email"), ("offer_nudge", "email"),
    ("offer_nudge", "voicemail"), ("reminder_thank_you_due", "email"),
    ("reminder_next_step", "email"), ("alert_stalled", "email"), ("alert_overdue", "email"),
    ("next_step_invite", "calendar"),
]


def test_every_shipped_template_is_listed_here() -> None:
    on_disk = {tuple(p.name.split(".")[:2]) for p in DEFAULTS.glob("*.j2")}
    assert on_disk == set(SHIPPED)


@pytest.mark.parametrize(("kind", "medium"), SHIPPED)
def test_shipped_templates_render_every_value_they_use(kind: str, medium: str) -> None:
    rendered = Renderer().render(make_context(kind), medium)
    text = rendered.subject + rendered.body
    assert "{{" not in text and "None" not in text and "\n\n\n" not in text
    assert rendered.body.strip() == rendered.body and rendered.body


def test_thank_you_email_says_what_the_playbook_asks() -> None:
    rendered = Renderer().render(make_context(), "email")
    assert rendered.subject == "Thank you: Senior Backend Engineer interview"
    assert rendered.body.startswith("Dear Sarah Whitfield and John Okafor,")
    for phrase in ("Thank you for your time today", "your interest in me",
                   "a systems design interview with the platform team",
                   "Thursday 3 December at 14:00 GMT", "My five years building payment systems",
                   "Maya Castellanos"):
        assert phrase in rendered.body


def test_optional_values_are_left_out_cleanly() -> None:
    context = make_context(fit=None, next_step=None, candidate={"name": "Maya Castellanos",
                                                              "email": "maya@example.org"})
    body = Renderer().render(context, "email").body
    assert "payment" not in body and "+44" not in body
    assert "I look forward to hearing from you." in body


def test_the_interview_day_is_relative_to_when_the_message_is_made() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo
    late = make_context(occurred_at=datetime(2026, 11, 26, 9, 0, tzinfo=ZoneInfo("Europe/London")))
    assert "your time yesterday" in Renderer().render(late, "email").body


def test_a_missing_variable_names_the_template_the_variable_and_the_line(tmp_path: Path
                                                                          ) -> None:
    (tmp_path / "thank_you.email.j2").write_text(
        "Subject: Thanks\n\nDear {{ addressees|names }},\n{{ fitt }}\n")
    with pytest.raises(TemplateError) as caught:
        Renderer(tmp_path).render(make_context(), "email")
    error = caught.value
    assert (error.template, error.variable, error.line) == ("thank_you.email.j2", "fitt", 4)
    assert "thank_you.email.j2" in str(error) and "'fitt'" in str(error)


def test_a_missing_attribute_is_an_error_too(tmp_path: Path) -> None:
    (tmp_path / "thank_you.email.j2").write_text("Hi {{ candidate.nickname }}")
    with pytest.raises(TemplateError, match="nickname") as caught:
        Renderer(tmp_path).render(make_context(), "email")
    assert caught.value.variable == "nickname"


def test_printing_an_unset_optional_value_is_an_error_not_none(tmp_path: Path) -> None:
    (tmp_path / "thank_you.email.j2").write_text("Dear all,\n{{ fit }}\n")
    with pytest.raises(TemplateError, match="None") as caught:
        Renderer(tmp_path).render(make_context(fit=None), "email")
    assert caught.value.line == 2


def test_syntax_errors_and_missing_templates_are_named(tmp_path: Path) -> None:
    (tmp_path / "thank_you.email.j2").write_text("Dear {{ candidate.name ")
    with pytest.raises(TemplateError, match="thank_you.email.j2.*syntax"):
        Renderer(tmp_path).render(make_context(), "email")
    with pytest.raises(TemplateError, match="no such template"):
        Renderer().render(make_context("alert_stalled"), "card")


def test_an_override_folder_wins_and_can_extend_the_default(tmp_path: Path) -> None:
    (tmp_path / "nudge_email.email.j2").write_text(
        "Subject: Checking in, {{ company }}\n\nDear {{ addressees|names }},\nShort note.\n")
    (tmp_path / "thank_you.card.j2").write_text(
        '{% extends "default/thank_you.card.j2" %}')
    renderer = Renderer(tmp_path)
    nudge = renderer.render(make_context("nudge_email"), "email")
    assert nudge.subject == "Checking in, Northwind Labs"
    assert nudge.body == "Dear Sarah Whitfield and John Okafor,\nShort note."
    card = renderer.render(make_context(), "card")
    assert card.body == Renderer().render(make_context(), "card").body
    assert renderer.render(make_context(), "email").subject.startswith("Thank you")


def test_names_joins_like_a_person_would() -> None:
    assert names([]) == ""
    assert names(["A"]) == "A"
    assert names(["A", "B"]) == "A and B"
    assert names(["A", "B", "C"]) == "A, B and C"


def test_override_templates_cannot_reach_python_internals(tmp_path: Path) -> None:
    (tmp_path / "thank_you.email.j2").write_text(
        "{{ candidate.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError, match="unsafe: access to attribute '__class__'") as caught:
        Renderer(tmp_path).render(make_context(), "email")
    assert caught.value.line == 1
