"""What every benchmark here shares: rounds that pair ours with its baseline, alternating
which runs first, and the per-round ratios reported with their spread (not the fastest
round of each side taken separately), plus the machine's load beside the figures."""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
T = TypeVar("T")


def alternated(rounds: int, sides: Sequence[str], run: Callable[[str, int], T]
               ) -> dict[str, list[T]]:
    """``run(side, round)`` for every side in every round, the order rotating each round
    (round 0: a, b, c; round 1: b, c, a; ...), so drift in the machine's load falls on
    every side alike.  Results by side, in round order."""
    results: dict[str, list[T]] = {side: [] for side in sides}
    for number in range(rounds):
        shift = number % len(sides)
        for side in list(sides[shift:]) + list(sides[:shift]):
            results[side].append(run(side, number))
    return results


def ratios(ours: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """The per-round ratios ours / baseline (same round, same machine state)."""
    return [o / b for o, b in zip(ours, baseline, strict=True)]


def spread(values: Sequence[float], unit: str = "x", digits: int = 2) -> str:
    """``0.31x (0.28-0.35, 6 rounds)``: the median, the min-max, the number of rounds."""
    if not values:
        return "–"
    med = statistics.median(values)
    fmt = f"{{:.{digits}f}}"
    return (f"{fmt.format(med)}{unit} ({fmt.format(min(values))}–{fmt.format(max(values))}, "
            f"{len(values)} rounds)")


def load_average() -> str:
    """The 1/5/15-minute load average, and how many CPUs share it."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} CPUs"


def write_section(heading: str, section: str, doc: Path = DOC) -> None:
    """Replace (or append) only the section under ``heading`` in docs/performance.md."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Performance\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    doc.write_text(text, encoding="utf-8")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table's lines."""
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
