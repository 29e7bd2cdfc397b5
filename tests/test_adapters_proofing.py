"""Proofing: every slip the playbook forbids blocks the send with a clear finding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adapters_fixtures import make_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Registry
from adapters.console import ConsoleAdapter
from adapters.message import Message, MessageContext
from adapters.proofing import ProofReport, ProofRules, prepare, proof
from adapters.rendering import Renderer

SHIPPED = [
    ("thank_you", "email"), ("thank_you", "card"), ("thank_you", "voicemail"),
    ("nudge_voicemail", "voicemail"), ("nudge_email", "email"), ("offer_nudge", "email"),
    ("offer_nudge", "voicemail"), ("reminder_thank_you_due", "email"),
    ("reminder_next_step", "email"), ("alert_stalled", "email"), ("alert_overdue", "email"),
    ("next_step_invite", "calendar"),
]
VARIANTS = {
    "panel": {},
    "one interviewer, video, no phone, no fit": {
        "interview_format": "video", "recipients": ["John Okafor"], "fit": None,
        "candidate": {"name": "Maya Castellanos", "email": "maya@example.org"}},
    "accents, apostrophes and hyphens": {
        "candidate": {"name": "Zoë O'Neil-Brandt", "email": "zoe@example.org",
                      "phone": "+1 415 555 0142"},
        "company": "Café Lumière", "role": "Data Platform Lead",
        "interviewers": [{"name": "Łukasz Wiśniewski", "title": "Head of Talent Acquisition",
                          "email": "lukasz@lumiere.example", "phone": "+33 1 70 36 39 50"}],
        "timezone": "Europe/Paris", "fit": None, "recruiter": {"name": "Ines Duarte"}},
    "no next step yet": {"next_step": None},
}
BASE = ("Dear Sarah Whitfield and John Okafor,\n\nThank you for your time today and for your "
        "interest in me for the Senior Backend Engineer role at Northwind Labs. I look forward "
        "to the next step.\n\nBest regards,\nMaya Castellanos")


def proofed(body: str, *, kind: str = "thank_you", medium: str = "email", subject: str = "",
            rules: ProofRules | None = None, **overrides: object) -> ProofReport:
    context = make_context(kind, **overrides)
    message = Message(kind=context.kind, channel=medium, medium=medium, to=(), subject=subject,
                      body=body, message_id=context.message_id)
    return proof(message, context, rules or ProofRules())


def render(context: MessageContext, medium: str) -> Message:
    rendered = Renderer().render(context, medium)
    return Message(kind=context.kind, channel=medium, medium=medium, to=(),
                   subject=rendered.subject, body=rendered.body, message_id=context.message_id)


CASES = [(kind, medium, variant) for kind, medium in SHIPPED for variant in sorted(VARIANTS)
         # Reminding of, or inviting to, a next step needs one to be scheduled.
         if not (variant == "no next step yet"
                 and kind in ("reminder_next_step", "next_step_invite"))]


@pytest.mark.parametrize(("kind", "medium", "variant"), CASES)
def test_default_templates_pass_with_realistic_data(kind: str, medium: str, variant: str
                                                    ) -> None:
    context = make_context(kind, **VARIANTS[variant])
    report = proof(render(context, medium), context)
    assert report.passed, report.findings


def test_the_example_message_passes() -> None:
    assert proofed(BASE).passed


@pytest.mark.parametrize(("wrong", "right", "needle"), [
    ("Whitfield", "Whitfeld", "'Whitfeld' looks like a misspelling of 'Whitfield'"),
    ("Whitfield", "Whitfeild", "'Whitfeild' looks like a misspelling of 'Whitfield'"),
    ("John", "Jon", "'Jon' looks like a misspelling of 'John'"),
    ("Sarah", "Sara", "'Sara' looks like a misspelling of 'Sarah'"),
    ("Okafor", "Okafur", "'Okafur' looks like a misspelling of 'Okafor'"),
    ("Northwind", "Nortwind", "'Nortwind' looks like a misspelling of 'Northwind'"),
    ("Whitfield", "whitfield", "'whitfield' should be written 'Whitfield'"),
    ("Sarah Whitfield", "Chris Whitfield", "'Chris Whitfield' is not a recorded name"),
    ("Sarah Whitfield", "Mark Whitfield", "'Mark Whitfield' is not a recorded name"),
    ("Maya Castellanos", "Maya Castelanos", "'Castelanos' looks like a misspelling"),
])
def test_misspelled_names_are_caught(wrong: str, right: str, needle: str) -> None:
    report = proofed(BASE.replace(wrong, right, 1))
    assert not report.passed
    found = [f for f in report.findings if f.code in ("name_mismatch", "name_case")]
    assert len(found) == 1, report.findings
    assert needle in found[0].message and right.split()[-1] in found[0].excerpt
    assert "spelling" not in report.codes  # one slip, one finding


def test_a_shortened_first_name_is_caught() -> None:
    people = [{"name": "Samantha Reed", "title": "Engineering Manager"}]
    report = proofed("Dear Sam,\n\nThank you for your time and your interest. I look forward to "
                     "the next step.\n\nMaya Castellanos", interviewers=people)
    assert report.codes == {"name_mismatch", "recipient_not_named"}
    assert report.findings[0].message == (
        "'Sam' shortens 'Samantha' in 'Samantha Reed' (interviewer): use the name as recorded")


def test_ordinary_words_near_a_name_are_left_alone() -> None:
    people = [{"name": "Jane Marsh", "title": "Engineering Manager"},
              {"name": "Will Turner", "title": "Staff Engineer"}]
    body = ("Dear Jane Marsh and Will Turner,\n\nThank you for your time today and for your "
            "interest in me. Mark my words: in June and March I will mark the dates, and I will "
            "be ready for the next step.\n\nMaya Castellanos")
    assert proofed(body, interviewers=people, next_step=None).passed


@pytest.mark.parametrize(("text", "expected"), [
    ("I enjoyed meeting Sarah Whitfield, Director of Engineering.",
     "Sarah Whitfield's title is recorded as 'VP Engineering', not 'Director of Engineering'"),
    ("I enjoyed meeting Sarah Whitfield (Director of Engineering).",
     "Sarah Whitfield's title is recorded as 'VP Engineering', not 'Director of Engineering'"),
    ("Our talk with Director of Engineering Sarah Whitfield helped.",
     "Sarah Whitfield's title is recorded as 'VP Engineering', not 'Director of Engineering'"),
    ("John Okafor, Director of Platforms, explained the stack.",
     "John Okafor's title is recorded as 'Director of Platform', not 'Director of Platforms'"),
    ("I learned a lot from your Director of Engineering about the roadmap.",
     "'Director of Engineering' is not a recorded title; Sarah Whitfield's title is recorded "
     "as 'VP Engineering'"),
    ("Thank you for considering me for the Senior Back-end Engineer position.",
     "'Senior Back-end Engineer' looks like the role, recorded as 'Senior Backend Engineer'"),
])
def test_wrong_titles_are_caught(text: str, expected: str) -> None:
    report = proofed(BASE.replace("Best regards", text + "\n\nBest regards"))
    assert [f.message.split(": write")[0] for f in report.findings
            if f.code in ("title_mismatch", "role_mismatch")] == [expected.split(": write")[0]]


def test_a_shortened_title_is_caught_and_the_exact_one_passes() -> None:
    people = [{"name": "Priya Raman", "title": "Head of Talent Acquisition"}]
    body = ("Dear Priya Raman,\n\nThank you for your time today and your interest in me. As {}, "
            "you set out the next step clearly.\n\nMaya Castellanos")
    assert proofed(body.format("Head of Talent Acquisition"), interviewers=people).passed
    report = proofed(body.format("Head of Talent"), interviewers=people)
    assert report.codes == {"title_mismatch"}
    assert "'Head of Talent' is not a recorded title" in report.findings[0].message


def test_titles_written_exactly_beside_names_pass() -> None:
    body = BASE.replace("Best regards", "With Sarah Whitfield, VP Engineering, and John Okafor "
                        "(Director of Platform) on the panel, I learned a lot.\n\nBest regards")
    assert proofed(body).passed


@pytest.mark.parametrize(("phrase", "code"), [
    ("I really need this job.", "tone_desperate"),
    ("Please please let me know.", "tone_desperate"),
    ("I am begging you to reconsider.", "tone_desperate"),
    ("Is there any chance at all?", "tone_desperate"),
    ("I would do anything to join.", "tone_desperate"),
    ("Please give me a chance.", "tone_desperate"),
    ("I am desperate to hear back.", "tone_desperate"),
    ("Please reply ASAP.", "tone_pushy"),
    ("Why haven't you replied?", "tone_pushy"),
    ("I have called you several times.", "tone_pushy"),
    ("Answer by Friday, or I will accept the other offer.", "tone_ultimatum"),
    ("Can you match this offer?", "tone_ultimatum"),
    ("I am so excited!!", "tone_exclamation"),
    ("Great! Lovely! Thanks!", "tone_exclamation"),
    ("I am VERY excited.", "tone_caps"),
    ("THANK YOU for everything.", "tone_caps"),
])
def test_desperate_pushy_or_shouting_tone_is_caught(phrase: str, code: str) -> None:
    report = proofed(BASE.replace("Best regards", phrase + "\n\nBest regards"))
    assert code in report.codes, report.findings
    finding = next(f for f in report.findings if f.code == code)
    assert finding.excerpt and finding.message


def test_acronyms_are_not_shouting() -> None:
    body = BASE.replace("Best regards", "I have built REST APIs on AWS with SQL and HTML for "
                        "the HR and IT teams.\n\nBest regards")
    assert proofed(body).passed


def test_an_over_long_thank_you_is_blocked() -> None:
    padding = " ".join(["I also enjoyed hearing about the team and its plans."] * 14)
    report = proofed(BASE.replace("Best regards", padding + "\n\nBest regards"))
    assert report.codes == {"too_long"}
    assert "should be at most 150" in report.findings[0].message


def test_a_card_has_a_tighter_limit_than_an_email() -> None:
    padding = " ".join(["I enjoyed the visit."] * 12)
    body = BASE.replace("Best regards", padding + "\n\nBest regards")
    assert proofed(body).passed
    report = proofed(body, medium="card")
    assert report.codes == {"too_long"} and "at most 80" in report.findings[0].message


def test_a_voicemail_must_read_in_under_thirty_seconds() -> None:
    script = ("Hello Sarah Whitfield, this is Maya Castellanos. Thank you for your time today "
              "and your interest in me for the Senior Backend Engineer role. I look forward to "
              "the next step. My number is +44 20 7946 0958. Thank you.")
    one = ["Sarah Whitfield"]
    assert proofed(script, medium="voicemail", recipients=one).passed
    longer = script.replace("Thank you.", "I also wanted to say how much I enjoyed meeting the "
                            "whole team, seeing the new office and hearing about your "
                            "plans for the platform. I will send a short email now as well. "
                            "Thank you.")
    report = proofed(longer, medium="voicemail", recipients=one)
    assert report.codes == {"too_long"} and "under 30 s" in report.findings[0].message


def test_the_limits_can_be_tuned() -> None:
    rules = ProofRules(word_limits={("thank_you", "email"): 20})
    assert proofed(BASE, rules=rules).codes == {"too_long"}


@pytest.mark.parametrize(("body", "missing"), [
    (BASE.replace("your time today and for ", ""), "missing_thanks_time"),
    (BASE.replace("for your interest in me ", ""), "missing_thanks_interest"),
    (BASE.replace(" I look forward to the next step.", ""), "missing_next_step"),
])
def test_a_thank_you_needs_thanks_for_time_interest_and_the_next_step(body: str, missing: str
                                                                     ) -> None:
    report = proofed(body)
    assert report.codes == {missing}, report.findings


def test_the_next_step_may_be_named_by_its_description() -> None:
    body = BASE.replace("the next step", "a systems design interview with the platform team")
    assert proofed(body).passed


def test_every_recipient_must_be_named() -> None:
    report = proofed(BASE.replace(" and John Okafor", ""))
    assert [f.message for f in report.findings] == [
        "John Okafor is a recipient but is not named in the message"]


def test_spelling_slips_are_caught_with_a_suggestion() -> None:
    report = proofed(BASE.replace("forward", "foward").replace("interest", "intrest"))
    assert [f.message for f in report.findings if f.code == "spelling"] == [
        "'intrest' is not a known word; did you mean 'interest'?",
        "'foward' is not a known word; did you mean 'forward'?"]


def test_emails_urls_numbers_and_the_candidacy_words_are_not_spelling_slips() -> None:
    body = BASE.replace("Maya Castellanos", "Maya Castellanos\nmaya.c@example.org | "
                        "https://maya.example/cv-2026 | github.com/mayac | +44 20 7946 0958")
    assert proofed(body).passed


def test_a_workspace_dictionary_extends_the_known_words() -> None:
    body = BASE.replace("Best regards", "I use Pulumi daily.\n\nBest regards")
    assert proofed(body).codes == {"spelling"}
    assert proofed(body, rules=ProofRules(known_words=frozenset({"Pulumi"}))).passed


def test_repeated_words_and_leftover_placeholders_are_caught() -> None:
    body = BASE.replace("for the Senior", "for the the Senior").replace("Best", "[Name] Best")
    assert proofed(body).codes == {"repeated_word", "template_leftover"}


def test_a_template_with_a_missing_variable_is_blocked_with_a_finding(tmp_path: Path) -> None:
    (tmp_path / "thank_you.email.j2").write_text("Dear {{ addressees|names }},\n{{ fitt }}\n")
    adapter = ConsoleAdapter(directory=tmp_path / "out", templates=str(tmp_path))
    message, report = prepare(adapter, make_context())
    assert message is None and not report.passed
    assert report.codes == {"template_error"}
    assert "thank_you.email.j2" in report.findings[0].message
    assert report.findings[0].excerpt == "fitt"


def test_prepare_proofs_what_the_adapter_renders(tmp_path: Path) -> None:
    adapter = Registry(discover=False).create("console", directory=tmp_path)
    message, report = prepare(adapter, make_context())
    assert message is not None and report.passed and report.message_id == message.message_id


def test_a_missing_address_is_blocked_with_a_finding() -> None:
    adapter = Registry(discover=False).create("email", host="127.0.0.1", port=1)
    people = [{"name": "Sarah Whitfield", "title": "VP Engineering"}]
    message, report = prepare(adapter, make_context(interviewers=people))
    assert message is None and report.codes == {"render_error"}
    assert "Sarah Whitfield has no email" in report.findings[0].message


def test_a_report_is_json_ready() -> None:
    report = proofed(BASE.replace("Whitfield", "Whitfeld"))
    data = json.loads(json.dumps(report.as_dict()))
    assert data["passed"] is False
    assert data["findings"][0]["code"] == "name_mismatch"


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=400))
def test_proofing_any_text_gives_a_report_and_never_crashes(body: str) -> None:
    report = proofed(body)
    assert isinstance(report, ProofReport)
    assert all(f.code and f.message for f in report.findings)


# -- names as recorded on the candidacy (issue 13) -----------------------------------------

RECORDED_NAMES = {
    "hyphen and macron": (
        {"name": "Zoë O'Neill", "email": "zoe@example.org"},
        [{"name": "Kenji Tanaka-Ōshima", "title": "Staff Engineer", "email": "k@x.example"}],
        "I rebuilt a payments ledger like Kenji Tanaka-Ōshima's team runs."),
    "typographic apostrophe": (
        {"name": "Siobhán O’Neill", "email": "s@example.org"},
        [{"name": "Hana Tanaka-Ōshima", "title": "Engineering Manager"},
         {"name": "Dmitri D'Souza", "title": "VP Engineering"}], None),
    "hyphenated first name": (
        {"name": "Zoë Brontë", "email": "zoe@example.org"},
        [{"name": "Jean-Luc Lefèvre", "title": "Head of Data"}],
        "I led the same warehouse migration at Zoë Brontë's last company."),
}


@pytest.mark.parametrize("medium", ["email", "card", "voicemail"])
@pytest.mark.parametrize("variant", sorted(RECORDED_NAMES))
def test_hyphenated_accented_and_apostrophed_names_pass_proofing(variant: str,
                                                                 medium: str) -> None:
    candidate, interviewers, fit = RECORDED_NAMES[variant]
    for kind in ("thank_you", "nudge_email") if medium == "email" else ("thank_you",):
        context = make_context(kind, candidate=candidate, interviewers=interviewers, fit=fit,
                               recipients=[])
        message = render(context, medium)
        report = proof(message, context)
        assert report.passed, (kind, report.findings)
        assert interviewers[0]["name"] in message.body
        if fit and kind == "thank_you" and medium != "voicemail":
            assert fit in message.body  # the "why I fit" line has its place


def test_a_slip_in_a_hyphenated_name_is_still_caught() -> None:
    candidate, interviewers, _ = RECORDED_NAMES["hyphen and macron"]
    report = proofed("Dear Kenji Tanaka-Ōshma,\n\nThank you for your time today and for your "
                     "interest in me. I look forward to the next step.\n\nBest regards,\n"
                     "Zoë O'Neill", candidate=candidate, interviewers=interviewers,
                     recipients=[], fit=None)
    assert not report.passed
    assert any("Ōshma" in f.message for f in report.findings), report.findings
