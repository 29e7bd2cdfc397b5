"""Proofing before any send: names, titles, spelling, length, tone, required elements.

`proof` returns a `ProofReport`; a report that has not ``passed`` blocks the
send, and its findings are what the outbox records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from adapters._text import (
    WORD,
    common,
    excerpt,
    sentences,
    speller,
    spoken_words,
    suggestion,
    tokens,
    written_words,
)
from adapters.base import Adapter
from adapters.errors import RenderError, TemplateError
from adapters.message import CANDIDATE_AUTHORED, Message, MessageContext
from adapters.names import Issue, check_names, check_titles, exact_words
from engine.policy import MessageKind


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason a message may not be sent, with the text that shows it."""

    code: str
    message: str
    excerpt: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "excerpt": self.excerpt}


@dataclass(frozen=True, slots=True)
class ProofReport:
    """The findings for one message; it passes when there are none."""

    message_id: str
    findings: tuple[Finding, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for recording in the history."""
        return {"message_id": self.message_id, "passed": self.passed,
                "findings": [f.as_dict() for f in self.findings]}


_WORD_LIMITS: Mapping[tuple[str, str], int] = MappingProxyType({
    (MessageKind.THANK_YOU, "email"): 150,
    (MessageKind.THANK_YOU, "card"): 80,
    (MessageKind.NUDGE_EMAIL, "email"): 120,
    (MessageKind.OFFER_NUDGE, "email"): 150,
})


@dataclass(frozen=True, slots=True)
class ProofRules:
    """Limits a workspace may tune; the defaults follow the playbook."""

    word_limits: Mapping[tuple[str, str], int] = field(default_factory=lambda: _WORD_LIMITS)
    default_word_limit: int = 250
    voicemail_seconds: float = 30.0
    words_per_minute: float = 150.0
    known_words: frozenset[str] = frozenset()  # a workspace's own dictionary, exact case


DEFAULT_RULES = ProofRules()

_DESPERATE = [
    r"\bi (?:really |truly |desperately |so )?need (?:this|the) "
    r"(?:job|role|position|opportunity)\b",
    r"\bi really need this\b",
    r"\bplease[\s,.!]+please\b",
    r"\bpretty please\b",
    r"\bbeg(?:s|ged|ging)?\b",
    r"\bany chance (?:at all|whatsoever)\b",
    r"\bdesperate(?:ly)?\b",
    r"\b(?:i'?ll|i will|i would|i'?d|willing to) do anything\b",
    r"\bplease (?:just )?(?:give|let) me (?:a|one|another) (?:chance|shot|try)\b",
    r"\bplease hire me\b",
    r"\b(?:my )?(?:last|only) hope\b",
]
_PUSHY = [
    r"\b(?:asap|urgent(?:ly)?)\b",
    r"\bstill (?:haven'?t|have not) heard\b",
    r"\bwhy (?:haven'?t|have you not|hasn'?t|has no one)\b",
    r"\bas i (?:said|mentioned|wrote) in my (?:last|previous|earlier) (?:\w+ )?"
    r"(?:email|message|call)s?\b",
    r"\bi(?:'ve| have) (?:called|emailed|written|tried) (?:to you |you )?"
    r"(?:several|many|multiple|\d+) times\b",
    r"\bplease respond\b",
    r"\bi expect (?:a|an|your) (?:answer|reply|response)\b",
]
_ULTIMATUM = [
    r"\b(?:or|otherwise) (?:else )?i(?:'ll| will| shall) (?:accept|take|sign)\b",
    r"\bunless (?:you|i hear)\b",
    r"\b(?:final|last) chance\b",
    r"\btake it or leave it\b",
    r"\bmatch (?:this|the|their|my|that) offer\b",
    r"\bi need (?:an|your) (?:answer|decision|reply) by\b",
]
_TONE = [("tone_desperate", "sounds desperate", p) for p in _DESPERATE] + \
    [("tone_pushy", "sounds pushy", p) for p in _PUSHY] + \
    [("tone_ultimatum", "reads as an ultimatum; mention an offer tactfully", p) for p in _ULTIMATUM]
_TONE_RE = [(code, why, re.compile(p, re.IGNORECASE)) for code, why, p in _TONE]
_STACKED = re.compile(r"[!?]*![!?]*")
_ACRONYMS = frozenset(
    "IT HR VP SVP EVP AVP CEO CTO COO CFO CPO CIO CISO CMO US USA UK EU AI ML QA UX UI PM "
    "API APIs SQL AWS GCP REST HTML CSS JSON SaaS B2B B2C OK GMT UTC BST CET EST PST".split())
# Everyday words of the job search that the general dictionary lacks.
_VOCABULARY = frozenset(
    "voicemail voicemails email emails emailed emailing online onsite offsite hybrid startup "
    "startups backend frontend fullstack devops fintech healthtech edtech linkedin onboarding "
    "whiteboard whiteboarding runbook runbooks microservices kubernetes javascript typescript "
    "postgresql github gitlab webinar cofounder roadmap roadmaps teammates".split())
_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\[(?:name|company|role|title|date|first name)\]"
                       r"|<(?:name|company|role)>", re.IGNORECASE)
_REPEATED = re.compile(r"\b([^\W\d_]+)[ \t]+\1\b", re.IGNORECASE)
_GRATITUDE = re.compile(r"\b(?:thank|thanks|grateful|appreciate[sd]?|appreciation)\b", re.I)
_TIME = re.compile(r"\btime\b|\bmeeting (?:with )?me\b|\bspeaking with me\b|\bseeing me\b", re.I)
_INTEREST = re.compile(r"\binterest(?:ed)?\b|\bconsider(?:ing|ation)\b", re.I)
_NEXT_STEP = re.compile(
    r"\bnext (?:step|steps|stage|round|conversation|interview|meeting)\b", re.IGNORECASE)


def proof(message: Message, context: MessageContext, rules: ProofRules = DEFAULT_RULES
          ) -> ProofReport:
    """Every finding that should stop ``message`` from being sent."""
    text = f"{message.subject}\n\n{message.body}" if message.subject else message.body
    issues: list[Issue] = []
    issues += check_names(text, context, rules.known_words)
    issues += check_titles(text, context, free_text=(context.fit or "",))
    issues += _spelling(text, context, rules, skip=list(issues))
    issues += _tone(text, context)
    issues += _leftovers(text)
    issues += _repeated(text)
    findings = [Finding(i.code, i.message, excerpt(text, i.start, i.end))
                for i in _widest(issues)]
    findings += _length(message, rules)
    if message.kind is MessageKind.THANK_YOU:
        findings += _thank_you_elements(message.body, context)
    if message.kind in CANDIDATE_AUTHORED:
        findings += _recipients_named(message.body, context)
    return ProofReport(message.message_id, tuple(findings))


def _overlaps(issue: Issue, others: list[Issue]) -> bool:
    return any(o.start < issue.end and issue.start < o.end for o in others)


def _widest(issues: list[Issue]) -> list[Issue]:
    # "I really need this job" and "I really need this" are one finding, not two.
    return [i for i in issues if not any(
        o is not i and o.code == i.code and o.start <= i.start and i.end <= o.end
        and (o.end - o.start) > (i.end - i.start) for o in issues)]


def prepare(adapter: Adapter, context: MessageContext, rules: ProofRules = DEFAULT_RULES
            ) -> tuple[Message | None, ProofReport]:
    """Render with ``adapter`` and proof; a render failure becomes a blocking finding."""
    try:
        message = adapter.render(context)
    except TemplateError as error:
        return None, ProofReport(context.message_id, (
            Finding("template_error", str(error), error.variable or ""),))
    except RenderError as error:
        return None, ProofReport(context.message_id, (Finding("render_error", str(error), ""),))
    return message, proof(message, context, rules)


def _spelling(text: str, context: MessageContext, rules: ProofRules, skip: list[Issue]
              ) -> list[Issue]:
    """Unknown words, except where a name finding already covers the slip."""
    recorded = exact_words(context) | rules.known_words
    if context.next_step and context.next_step.location:
        recorded |= set(WORD.findall(context.next_step.location))  # addresses are proper nouns
    known = set(_VOCABULARY)
    for recorded_word in recorded:
        word = recorded_word.lower().replace("’", "'")
        # The text is checked part by part at hyphens: "Tanaka-Ōshima" spells both parts.
        known.add(word)
        known.update(word.split("-"))
    spell, issues, seen = speller(), [], set()
    for token in tokens(text):
        for part in token.text.replace("’", "'").split("-"):
            word = part.lower()
            if (len(part) < 2 or word in known or word in seen or word in spell
                    or re.sub(r"'s$", "", word) in spell or re.sub(r"'s$", "", word) in known
                    or (part.isupper() and len(part) <= 5)):
                continue
            seen.add(word)
            start = token.start + token.text.find(part)
            if _overlaps(Issue("", "", start, start + len(part)), skip):
                continue
            guess = suggestion(word)
            hint = f"; did you mean {guess!r}?" if guess and guess != word else ""
            issues.append(Issue("spelling", f"{part!r} is not a known word{hint}",
                                start, start + len(part)))
    return issues


def _tone(text: str, context: MessageContext) -> list[Issue]:
    issues = [Issue(code, f"{m.group()!r} {why}", m.start(), m.end())
              for code, why, pattern in _TONE_RE for m in pattern.finditer(text)]
    issues += [Issue("tone_exclamation", f"stacked marks {m.group()!r}: one is plenty",
                     m.start(), m.end())
               for m in _STACKED.finditer(text) if len(m.group()) > 1]
    if text.count("!") > 2:
        at = text.index("!")
        issues.append(Issue("tone_exclamation", f"{text.count('!')} exclamation marks: "
                            "use at most two", at, at + 1))
    recorded = exact_words(context)
    for token in tokens(text):
        word = token.text
        if (word.isupper() and len(word) >= 2 and word not in _ACRONYMS
                and word not in recorded and (len(word) >= 5 or common(word))):
            issues.append(Issue("tone_caps", f"{word!r} in capitals reads as shouting",
                                token.start, token.end))
    return issues


def _leftovers(text: str) -> list[Issue]:
    return [Issue("template_leftover", f"{m.group()!r} looks like an unfilled placeholder",
                  m.start(), m.end()) for m in _LEFTOVER.finditer(text)]


def _repeated(text: str) -> list[Issue]:
    return [Issue("repeated_word", f"{m.group(1)!r} is repeated", m.start(), m.end())
            for m in _REPEATED.finditer(text) if m.group(1).lower() not in {"had", "that"}]


def _length(message: Message, rules: ProofRules) -> list[Finding]:
    head = " ".join(message.body.split()[:12])
    if message.medium == "voicemail":
        seconds = spoken_words(message.body) * 60 / rules.words_per_minute
        if seconds >= rules.voicemail_seconds:
            return [Finding("too_long", f"the voicemail reads in about {seconds:.0f} s at "
                            f"{rules.words_per_minute:.0f} words a minute; keep it under "
                            f"{rules.voicemail_seconds:.0f} s", head)]
        return []
    limit = rules.word_limits.get((message.kind, message.medium), rules.default_word_limit)
    count = written_words(message.body)
    if count > limit:
        return [Finding("too_long", f"{count} words; a {message.kind.value} by "
                        f"{message.medium} should be at most {limit}", head)]
    return []


def _thank_you_elements(body: str, context: MessageContext) -> list[Finding]:
    grateful = [s for s in sentences(body) if _GRATITUDE.search(s)]
    findings = []
    if not any(_TIME.search(s) for s in grateful):
        findings.append(Finding("missing_thanks_time",
                                "a thank-you must thank them for their time", ""))
    if not any(_INTEREST.search(s) for s in grateful):
        findings.append(Finding("missing_thanks_interest",
                                "a thank-you must thank them for their interest", ""))
    step = context.next_step.description.lower() if context.next_step else None
    if not _NEXT_STEP.search(body) and not (step and step in body.lower()):
        findings.append(Finding("missing_next_step",
                                "a thank-you must mention the next step", ""))
    return findings


def _recipients_named(body: str, context: MessageContext) -> list[Finding]:
    words = set(WORD.findall(body))
    return [Finding("recipient_not_named", f"{person.name} is a recipient but is not named "
                    "in the message", "")
            for person in context.addressees
            if person.name not in body and not words & set(WORD.findall(person.name))]
