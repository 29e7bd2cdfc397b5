"""Proofing of names and titles: each must appear exactly as recorded.

Near misses are caught by edit distance over capitalised words ("Whitfeld"
for "Whitfield", "Jon" for "John") and by similarity over title phrases
("Director of Engineering" for a recorded "VP Engineering").  Ordinary
English words are left alone unless they stand where a name goes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from adapters._text import WORD, Token, common, osa_distance, tokens
from adapters.message import MessageContext

_CALENDAR_WORDS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april "
    "may june july august september october november december".split())
_GREETINGS = frozenset({"dear", "hi", "hello", "hey", "thanks", "to"})
_HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "professor", "sir", "dame"})
KEYWORDS = frozenset(
    "vp svp evp avp vice president director head manager lead chief officer cto ceo coo cfo "
    "cpo cio ciso cmo recruiter partner principal engineer designer coordinator specialist "
    "sourcer founder co-founder cofounder architect analyst scientist consultant associate "
    "executive administrator owner advisor counsel supervisor chair chairman chairwoman "
    "chairperson secretary treasurer researcher developer intern editor producer strategist "
    "generalist".split())
_CONNECTORS = frozenset({"of", "and", "for", "the", "de", "to", "&"})
_GENERIC = KEYWORDS | _CONNECTORS | frozenset(
    "senior junior staff sr jr global group deputy assistant interim acting".split())
# Capitalised only because a sentence starts with them: never part of a title.
_LEADING = frozenset("a an as at by from his her in meet met my our their your with".split())
_MASK = "\x00"
_AFTER_NAME = re.compile(r"[ \t]*(?:,|\(|–|—| -)[ \t]*|[ \t]*\n[ \t]*")


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem found at ``start:end`` of the proofed text."""

    code: str
    message: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Recorded:
    token: str  # one word of a recorded name, e.g. "Whitfield"
    whole: str  # the whole recorded name, e.g. "Sarah Whitfield"
    what: str  # e.g. "interviewer", "company"
    first: bool  # a person's first name, which people tend to shorten


def _recorded(context: MessageContext) -> list[_Recorded]:
    people = [(i.name, "interviewer") for i in context.interviewers]
    people.append((context.candidate.name, "candidate"))
    if context.recruiter is not None:
        people.append((context.recruiter.name, "recruiter"))
    companies = [context.company]
    if context.competing_offer is not None:
        companies.append(context.competing_offer.company)
    found = []
    for whole, what in people:
        words = WORD.findall(whole)
        found += [_Recorded(w, whole, what, n == 0 and len(words) > 1) for n, w in enumerate(words)]
    for whole in companies:
        found += [_Recorded(w, whole, "company", False) for w in WORD.findall(whole)]
    return found


def exact_words(context: MessageContext) -> set[str]:
    """Every word of a recorded name, company, role or title, in its recorded case."""
    words = {r.token for r in _recorded(context)}
    for phrase in [context.role, *(i.title for i in context.interviewers)]:
        words.update(WORD.findall(phrase))
    return words


def check_names(text: str, context: MessageContext, allowed: frozenset[str] = frozenset()
                ) -> list[Issue]:
    """Near misses of recorded person and company names in ``text``."""
    recorded = [r for r in _recorded(context) if len(r.token) >= 3]
    by_lower = {r.token.lower(): r for r in recorded}
    exact = exact_words(context) | allowed
    surnames = {r.token: r.whole for r in recorded
                if r.what != "company" and r.whole.endswith(r.token) and r.whole != r.token}
    words = tokens(text)
    issues: list[Issue] = []
    for n, token in enumerate(words):
        word = token.bare
        if word in exact or len(word) < 2:
            continue
        same_letters = by_lower.get(word.lower())
        if same_letters is not None:
            if word[0].isupper() or not common(word):
                issues.append(Issue(
                    "name_case", f"{word!r} should be written {same_letters.token!r}, as in "
                    f"{same_letters.whole!r} ({same_letters.what})", token.start, token.end))
            continue
        if not word[0].isupper() or word.lower() in _CALENDAR_WORDS:
            continue
        slip = None
        if not common(word) or _name_position(text, words, n, exact):
            slip = _near_miss(word, recorded)
        if slip is None and (not common(word) or _after_greeting(text, words, n)):
            slip = _wrong_first_name(word, text, words, n, surnames)
        if slip is not None:
            issues.append(Issue("name_mismatch", slip, token.start, token.end))
    return issues


def _wrong_first_name(word: str, text: str, words: list[Token], n: int,
                      surnames: dict[str, str]) -> str | None:
    # "Chris Whitfield" for a recorded "Sarah Whitfield": right surname, wrong first name.
    if n + 1 >= len(words) or not re.fullmatch(r"[ \t]+", text[words[n].end:words[n + 1].start]):
        return None
    whole = surnames.get(words[n + 1].bare)
    if whole is None or word.lower() in _HONORIFICS | _GREETINGS:
        return None
    return f"'{word} {words[n + 1].bare}' is not a recorded name; did you mean {whole!r}?"


def _near_miss(word: str, recorded: list[_Recorded]) -> str | None:
    lower = word.lower()
    for r in recorded:
        target = r.token.lower()
        allowed = 1 if len(target) <= 5 else 2
        if abs(len(target) - len(lower)) <= allowed and osa_distance(lower, target) <= allowed:
            return (f"{word!r} looks like a misspelling of {r.token!r} in {r.whole!r} "
                    f"({r.what}): spell it exactly as recorded")
        if r.first and target.startswith(lower) and len(target) - len(word) >= 2:
            return (f"{word!r} shortens {r.token!r} in {r.whole!r} ({r.what}): "
                    "use the name as recorded")
    return None


def _after_greeting(text: str, words: list[Token], n: int) -> bool:
    return (n > 0 and words[n - 1].text.lower() in _GREETINGS
            and "\n" not in text[words[n - 1].end:words[n].start])


def _name_position(text: str, words: list[Token], n: int, exact: set[str]) -> bool:
    # After a greeting, or beside a recorded name word on the same line, a word is a name.
    neighbours = []
    if n > 0 and "\n" not in text[words[n - 1].end:words[n].start]:
        neighbours.append(words[n - 1])
    if n + 1 < len(words) and "\n" not in text[words[n].end:words[n + 1].start]:
        neighbours.append(words[n + 1])
    return any(t.text.lower() in _GREETINGS or t.bare in exact for t in neighbours)


def check_titles(text: str, context: MessageContext, free_text: tuple[str, ...] = ()
                 ) -> list[Issue]:
    """Titles beside an interviewer's name that differ from theirs, and near-miss titles.

    ``free_text`` (e.g. the candidate's fit sentence, about their own past
    titles) is exempt from the near-miss scan but not from the rest.
    """
    titles = [(i.title, i.name) for i in context.interviewers]
    issues = _beside_names(text, context)
    hidden = _masked(text, [i.name for i in context.interviewers] + [t for t, _ in titles]
                     + [context.role, context.company, *filter(None, free_text)])
    reported = [(i.start, i.end) for i in issues]
    for start, end, span in _spans(hidden):
        if len(span.split()) < 2 or any(s < end and start < e for s, e in reported):
            continue
        if _similar_to_role(span, context.role):
            issues.append(Issue("role_mismatch", f"{span!r} looks like the role, recorded as "
                                f"{context.role!r}: write it exactly", start, end))
            continue
        for title, owner in titles:
            ratio = SequenceMatcher(None, span.lower(), title.lower()).ratio()
            if ratio >= 0.85 or (ratio >= 0.6 and _significant(span) & _significant(title)):
                issues.append(Issue(
                    "title_mismatch", f"{span!r} is not a recorded title; {owner}'s title is "
                    f"recorded as {title!r}", start, end))
                break
    return issues


def _beside_names(text: str, context: MessageContext) -> list[Issue]:
    spans = _spans(_masked(text, [i.name for i in context.interviewers]))
    issues = []
    for person in context.interviewers:
        for match in re.finditer(re.escape(person.name), text):
            after = _AFTER_NAME.match(text, match.end())
            gap_before = re.search(r"[ \t]*,?[ \t]*\Z", text[:match.start()])
            for start, end, span in spans:
                if after is not None and start == after.end():
                    exact = span == person.title or span.startswith(person.title + " ")
                elif gap_before is not None and end == gap_before.start():
                    exact = span == person.title or span.endswith(" " + person.title)
                else:
                    continue
                similar = SequenceMatcher(None, span.lower(), person.title.lower()).ratio()
                if not exact and (_has_keyword(span) or similar >= 0.6):
                    issues.append(Issue(
                        "title_mismatch", f"{person.name}'s title is recorded as "
                        f"{person.title!r}, not {span!r}", start, end))
    return issues


def _spans(text: str) -> list[tuple[int, int, str]]:
    """Runs of capitalised words (with "of", "and", "&" inside) holding a title word."""
    runs: list[list[re.Match[str]]] = []
    for match in re.finditer(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*|&", text):
        word = match.group()
        fits = word[0].isupper() or word.lower() in _CONNECTORS
        gap = text[runs[-1][-1].end():match.start()] if runs and runs[-1] else ""
        joined = bool(re.fullmatch(r"[ \t]+", gap))
        if fits and joined:
            runs[-1].append(match)
        elif fits:
            runs.append([match])
        else:
            runs.append([])
    spans = []
    for run in runs:
        while run and run[0].group().lower() in _CONNECTORS | _LEADING:
            run = run[1:]
        while run and run[-1].group().lower() in _CONNECTORS:
            run = run[:-1]
        if run and _has_keyword(" ".join(m.group() for m in run)):
            spans.append((run[0].start(), run[-1].end(), text[run[0].start():run[-1].end()]))
    return spans


def _has_keyword(phrase: str) -> bool:
    return any(w.lower() in KEYWORDS or w.lower().rstrip("s") in KEYWORDS
               for w in phrase.split())


def _significant(title: str) -> set[str]:
    # The words that say what a title is about ("Engineering"), else its main noun.
    words = [w.lower() for w in WORD.findall(title)]
    core = {w for w in words if w not in _GENERIC}
    keywords = [w for w in words if w in KEYWORDS]
    return core or set(keywords[-1:])


def _similar_to_role(span: str, role: str) -> bool:
    if span == role or span in role:
        return False
    return SequenceMatcher(None, span.lower(), role.lower()).ratio() >= 0.85


def _masked(text: str, phrases: list[str]) -> str:
    for phrase in sorted(set(phrases), key=len, reverse=True):
        text = text.replace(phrase, _MASK * len(phrase))
    return text
