"""The cadence policy's rules as the dashboard names them: every automated line (a
decision, a stall, a refusal) links to its rule's entry on the Rules page (`rule_url`).

The rules themselves live in `engine.decisions`; docs/policy.md has the full table.  A test
keeps this list and the rule names in `engine/decisions.py` the same.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote


class Rule(NamedTuple):
    """One rule: what it decides, and when it falls due."""

    decides: str
    when: str


RULES: dict[str, Rule] = {
    "thank_you.same_day": Rule(
        "a thank-you for the whole panel (card, email, or voicemail and email)",
        "when the next step is closed: a card at once, otherwise the next moment outside "
        "the quiet hours (inside the send window too when the policy says so)"),
    "thank_you.deadline": Rule(
        "a reminder that the thank-you is overdue",
        "at the thank-you deadline (the interview's local day plus the days allowed, at the "
        "deadline's local time) while no thank-you covers the panel"),
    "patience.timeline_early_end": Rule(
        "a nudge",
        "the interview plus the stated timeline's shortest weeks, plus the business days "
        "after it; never before the thank-you"),
    "patience.no_timeline": Rule(
        "a nudge", "no timeline stated: the set business days after the thank-you"),
    "patience.after_update": Rule(
        "a nudge", "an update from the employer restarts the wait: the spacing after it"),
    "follow_up.first_nudge": Rule(
        "a nudge", "the interviewer asked to be followed up: the set business days after "
                   "the thank-you"),
    "nudge.spacing": Rule("a nudge", "the spacing in business days after the last nudge"),
    "follow_up.spacing": Rule(
        "a nudge", "asked to follow up: the follow-up spacing after the last nudge"),
    "follow_up.max_nudges": Rule(
        "no more nudges", "asked to follow up: the follow-up pest line is reached"),
    "pest_line.max_nudges": Rule(
        "no more nudges", "the pest line (the most nudges before a stall) is reached"),
    "competing_offer.before_deadline": Rule(
        "a nudge about a competing offer",
        "the send window's opening, the set business days before the offer's deadline"),
    "stall.exhausted_and_patience_spent": Rule(
        "a stall",
        "the nudges have reached the pest line, the timeline's late end plus the grace "
        "business days has passed, and the last nudge has had its spacing"),
    "reminder.next_step_tomorrow": Rule(
        "a reminder of tomorrow's next step",
        "the local day before the next step, at the send window's start"),
    "pause": Rule("nothing while paused", "the cadence is paused until resumed"),
}


def rule_url(rule: str, policy: str | None = None) -> str:
    """The Rules page's entry for ``rule`` (under ``policy``, ``name@version``, if known)."""
    query = f"?policy={quote(policy, safe='@')}" if policy else ""
    return f"/dashboard/rules{query}#rule-{quote(rule, safe='')}"
