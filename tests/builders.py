"""Realistic command data for tests, with overrides."""

from __future__ import annotations

from typing import Any


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
