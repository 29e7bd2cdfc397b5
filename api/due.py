"""What a candidacy needs next, for `next_due` and `GET /agenda`: the API's one seam to the
cadence decision function."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from engine.application import Candidacies
from engine.candidacy import Candidacy
from engine.decisions import outstanding, plan


class DueAction(BaseModel):
    """One step the candidacy's policy wants taken, and by when."""

    kind: str = Field(description="thank_you, thank_you_overdue, nudge, offer_nudge, stall "
                                  "or next_step_reminder")
    due_at: datetime = Field(description="when it falls due (UTC)")
    rule: str = Field(description="the policy rule that makes it due")
    key: str = Field(description="the step's stable identity within the candidacy")
    channels: list[str] = Field(default_factory=list)
    medium: str | None = None
    note: str = ""


def due_actions(candidacies: Candidacies, candidacy: Candidacy) -> list[DueAction]:
    """Every step still pending for ``candidacy``, soonest first (those due by now are
    due or overdue): the same `plan` the scheduler follows, and what stays owed after
    its alert (a thank-you that has not really gone, see `outstanding`)."""
    policy = candidacies.policies.of(candidacy)
    actions = plan(candidacy, policy)
    owed = outstanding(candidacy, policy)
    if owed:
        actions = sorted([*owed, *actions], key=lambda a: (a.due_at, a.key))
    return [DueAction(kind=a.kind, due_at=a.due_at, rule=a.rule, key=a.key,
                      channels=list(a.channels), medium=a.medium, note=a.note)
            for a in actions]
