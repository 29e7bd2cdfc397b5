"""The card adapter: a printable PDF card and a "drop at reception today" task."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import pytest
from adapters_fixtures import make_context

from adapters.card import CardAdapter, card_pdf
from adapters.errors import RenderError

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def pdf_text(pdf: bytes) -> str:
    """The text drawn with the built-in fonts, lines joined by spaces."""
    pieces = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            content = zlib.decompress(stream)
        except zlib.error:
            content = stream
        pieces += re.findall(rb"\((.*?)(?<!\\)\)\s*Tj", content)
    return " ".join(p.decode("latin-1").replace("\\(", "(").replace("\\)", ")") for p in pieces)


def test_the_card_is_a_pdf_holding_the_message_and_who_it_is_for(tmp_path: Path) -> None:
    message = CardAdapter(tasks_dir=tmp_path).render(make_context(channel="card"))
    [card] = message.attachments
    assert card.mimetype == "application/pdf" and card.content.startswith(b"%PDF")
    text = " ".join(pdf_text(card.content).split())
    assert "Thank you" in text
    assert "Sarah Whitfield, VP Engineering" in text and "John Okafor, Director of Platform" in text
    assert " ".join(message.body.split()) in text
    assert message.subject == "Thank-you card for Sarah Whitfield and John Okafor"


def test_the_same_card_gives_the_same_bytes(tmp_path: Path) -> None:
    adapter = CardAdapter(tasks_dir=tmp_path)
    first = adapter.render(make_context(channel="card")).attachments[0].content
    assert first == adapter.render(make_context(channel="card")).attachments[0].content


def test_the_candidate_gets_a_task_to_hand_it_in_today(tmp_path: Path) -> None:
    adapter = CardAdapter(tasks_dir=tmp_path)
    context = make_context(channel="card")
    message = adapter.render(context)
    receipt = adapter.deliver(message)

    task = json.loads(Path(receipt.detail["task"]).read_text())
    assert task["title"] == "Drop your thank-you card at Northwind Labs reception today"
    assert task["due"] == "2026-11-25"  # the interview day, in the candidacy's zone
    assert "do not post it" in task["instructions"]
    assert "Sarah Whitfield, VP Engineering" in task["instructions"]
    saved = tmp_path / task["files"][0]
    assert saved.read_bytes() == message.attachments[0].content
    assert receipt.status == "task" and adapter.report(receipt)["detail"]["card"] == str(saved)


def test_names_beyond_latin_1_need_a_unicode_font(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="Unicode font"):
        card_pdf("Dziękuję", ["Łukasz"], fallback_fonts=())
    with pytest.raises(RenderError, match="missing.ttf does not exist"):
        card_pdf("Dziękuję", ["Łukasz"], font_path=tmp_path / "missing.ttf")
    if not DEJAVU.exists():
        pytest.skip("DejaVu Sans is not installed")
    people = [{"name": "Łukasz Wiśniewski", "title": "Head of Talent Acquisition"}]
    context = make_context(channel="card", interviewers=people, fit=None)
    card = CardAdapter(tasks_dir=tmp_path, font_path=DEJAVU).render(context).attachments[0]
    assert card.content.startswith(b"%PDF") and b"DejaVu" in card.content


def test_only_a_thank_you_goes_on_a_card(tmp_path: Path) -> None:
    from adapters.errors import TemplateError

    with pytest.raises(TemplateError, match="no such template"):
        CardAdapter(tasks_dir=tmp_path).render(make_context("nudge_email", channel="card"))
