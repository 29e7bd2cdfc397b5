"""Helpers of the browser tier (its fixtures are in browser_fixtures.py; the real server is
`api_support.LiveServer`): what a page did beyond what a test allows, and screenshots as
test artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
LOOPBACK = "127.0.0.1"


@dataclass
class PageWatch:
    """What a page did: requests it tried beyond loopback (aborted), requests the page's
    Content-Security-Policy refused (never sent), and uncaught script errors."""

    outside: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save the page (by default all of it, else the viewport) as
    `test-artifacts/screenshots/<name>.png`; returns the file."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
