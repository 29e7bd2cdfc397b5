"""Every `closer` command reports a user's mistake the same way: ``error: ...`` on
standard error, exit 1, the problem's own text intact (brackets are not console markup)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from api.settings import get_settings

pytestmark = pytest.mark.unit


def test_a_mistake_is_one_line_on_stderr_with_its_brackets_kept(tmp_path: Path) -> None:
    missing = tmp_path / "[draft] policy.toml"
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["policy", "show", str(missing)])
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "[draft] policy.toml" in line
