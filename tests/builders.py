"""Realistic command data for tests, with overrides."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.policy import default_policy, policy_from_dict

if TYPE_CHECKING:
    from engine.policy import CadencePolicy


def interview(**overrides: Any) -> dict[str, Any]:
    """A first interview: in person in London, one interviewer, a 3-4 week timeline."""
    data: dict[str, Any] = {
        "candidate": {"name": "Maya Okafor", "email": "maya@example.com"},
        "company": "Northwind Analytics",
        "role": "Senior Data Engineer",
        "format": "in_person",
        "interviewers": [{"name": "Daniel Whitfield", "title": "VP Engineering",
                          "email": "daniel@northwind.example"}],
        "interviewed_at": "2026-11-25T09:00:00+00:00",
        "timezone": "Europe/London",
        "country": "GB",
        "timeline": {"min_weeks": 3, "max_weeks": 4},
    }
    data.update(overrides)
    return data


PANEL = [{"name": "Priya Raman", "title": "Engineering Manager"},
         {"name": "Tom Becker", "title": "Staff Engineer"}]


# The commands that walk a fresh candidacy (interviewed by PANEL) to each stage.
PATH_TO: dict[str, list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = {}
_WALK = [
    ("interviewed", None),
    ("hesitations_addressed", ("record_no_hesitations", (), {})),
    ("next_step_closed", ("close_next_step", ("Onsite with the CTO",), {})),
    ("thanked", ("send_thank_you", ("email",), {"to": ["Priya Raman"]})),
    ("awaiting", ("send_thank_you", ("card",), {"to": ["Tom Becker"]})),
    ("nudged", ("send_nudge", (), {"override": {"reason": "walking the test to nudged"}})),
    ("advanced", ("receive_reply", ("advanced",), {"note": "onsite next week"})),
]
_steps: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
for _stage, _step in _WALK:
    if _step:
        _steps.append(_step)
    PATH_TO[_stage] = list(_steps)
PATH_TO["stalled"] = PATH_TO["nudged"] + [("receive_reply", ("rejected",),
                                          {"note": "went with an internal candidate"})]


def candidacy_at(candidacies: Any, actor: Any, stage: str, *, hesitation: bool = False,
                 paused: bool = False) -> str:
    """A new candidacy (interviewed by PANEL) walked through the application to ``stage``.

    ``paused``: the cadence is paused right after the interview (so it stays paused);
    ``hesitation``: an open hesitation is raised (only at ``interviewed``)."""
    candidacy_id = candidacies.record_interview(actor, interview(interviewers=PANEL)).candidacy_id
    if paused:
        candidacies.pause_cadence(actor, candidacy_id, "candidate travelling")
    for command, args, kwargs in PATH_TO[stage]:
        getattr(candidacies, command)(actor, candidacy_id, *args, **kwargs)
    if hesitation:
        assert stage == "interviewed", "an open hesitation keeps the candidacy at interviewed"
        candidacies.raise_hesitation(actor, candidacy_id, "Worried about on-call experience")
    outcome = candidacies.get(candidacy_id, actor.workspace)
    assert outcome.stage == stage, (outcome.stage, stage)
    return candidacy_id


def policy_variant(name: str, **changes: Any) -> CadencePolicy:
    """The playbook under another name with some fields changed (``section__field=value``)."""
    data = default_policy().model_dump(mode="json")
    data["name"] = name
    for key, value in changes.items():
        section, field = key.split("__")
        data[section][field] = value
    return policy_from_dict(data)
