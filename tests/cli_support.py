"""Running `closer` in-process against a test's store (typer's CliRunner)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from api.settings import get_settings

runner = CliRunner()


def configure(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
    """The CLI's settings for ``database_url``: tasks under ``tmp_path``, quiet logs, SMTP
    without TLS, one delivery attempt (a failure dead-letters at once)."""
    monkeypatch.setenv("CLOSER_DATABASE_URL", database_url)
    monkeypatch.setenv("CLOSER_TASKS_DIR", str(tmp_path / "tasks"))
    monkeypatch.setenv("CLOSER_LOG_LEVEL", "error")
    monkeypatch.setenv("CLOSER_SMTP_STARTTLS", "false")
    monkeypatch.setenv("CLOSER_OUTBOX_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()


def run(*args: str, code: int = 0) -> str:
    """``closer ARGS``, asserting its exit code; its output."""
    get_settings.cache_clear()
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output
