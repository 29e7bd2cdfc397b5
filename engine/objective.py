"""A tuning objective stated in words: ``maximise advanced subject to nudges<=2 and
pest_breaches==0``.

Grammar (case-insensitive, whitespace free)::

    objective  := ("maximise" | "maximize" | "minimise" | "minimize") OUTCOME
                  [ "subject to" constraint { "and" constraint } ]
    constraint := OUTCOME ("<=" | ">=" | "<" | ">" | "==") NUMBER

OUTCOME is a key of `engine.counterfactual.OUTCOMES` (``nudges_per_candidacy`` is
accepted for ``nudges``).  A constraint holds for a policy when its estimate satisfies
it; ``==`` compares to within 1e-9.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.errors import InvalidInput

ALIASES = {"nudges_per_candidacy": "nudges", "pest_line_breaches": "pest_breaches",
           "share_advanced": "advanced", "share_stalled": "stalled"}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
    "==": lambda a, b: abs(a - b) <= 1e-9}
_CONSTRAINT = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|==|<|>)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Constraint:
    outcome: str
    op: str
    value: float

    def holds(self, estimate: float | None) -> bool:
        return estimate is not None and _OPS[self.op](estimate, self.value)

    def __str__(self) -> str:
        return f"{self.outcome}{self.op}{self.value:g}"


@dataclass(frozen=True)
class Objective:
    maximise: bool
    outcome: str
    constraints: tuple[Constraint, ...] = ()

    def __str__(self) -> str:
        text = f"{'maximise' if self.maximise else 'minimise'} {self.outcome}"
        if self.constraints:
            text += " subject to " + " and ".join(str(c) for c in self.constraints)
        return text


def _outcome(name: str, known: Mapping[str, object]) -> str:
    name = ALIASES.get(name, name)
    if name not in known:
        raise InvalidInput("--objective", f"unknown outcome {name!r}; known: "
                                          f"{', '.join(sorted(known))}")
    return name


def parse_objective(text: str) -> Objective:
    """The objective, or an `InvalidInput` naming what is wrong."""
    from engine.counterfactual import OUTCOMES

    clean = " ".join(text.lower().split())
    if clean.endswith(" subject to"):
        raise InvalidInput("--objective", f"{text!r}: 'subject to' needs a constraint")
    head, sep, rest = clean.partition(" subject to ")
    words = head.split()
    if len(words) != 2 or words[0] not in ("maximise", "maximize", "minimise", "minimize"):
        raise InvalidInput("--objective", f"{text!r}: start with 'maximise OUTCOME' or "
                                          "'minimise OUTCOME', e.g. 'maximise advanced "
                                          "subject to nudges<=2 and pest_breaches==0'")
    outcome = _outcome(words[1], OUTCOMES)
    constraints = []
    if sep:
        for part in rest.split(" and "):
            match = _CONSTRAINT.match(part)
            if match is None:
                raise InvalidInput("--objective", f"{part.strip()!r}: a constraint is "
                                                  "OUTCOME op NUMBER, op one of <= >= < > ==")
            name, op, value = match.groups()
            constraints.append(Constraint(_outcome(name, OUTCOMES), op, float(value)))
    return Objective(words[0].startswith("max"), outcome, tuple(constraints))
