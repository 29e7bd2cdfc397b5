"""The file/console adapter for local runs and the demo."""

from __future__ import annotations

import io
from email import message_from_bytes, policy
from pathlib import Path

from adapters_fixtures import make_context

from adapters.card import CardAdapter
from adapters.console import ConsoleAdapter


def test_messages_are_written_as_eml_and_txt(tmp_path: Path) -> None:
    adapter = ConsoleAdapter(directory=tmp_path)
    context = make_context(channel="console")
    message = adapter.render(context)
    assert message.medium == "email"  # the thank-you's default medium
    receipt = adapter.deliver(message)

    eml = message_from_bytes(Path(receipt.detail["eml"]).read_bytes(), policy=policy.default)
    assert eml["Message-ID"] == f"<{context.message_id}@closer.local>"
    assert eml["Subject"] == message.subject
    assert eml.get_content().strip() == message.body
    txt = Path(receipt.detail["txt"]).read_text()
    assert f"Message-Id: {context.message_id}" in txt and message.body in txt
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{context.message_id}.eml", f"{context.message_id}.txt"])


def test_without_a_folder_messages_are_printed() -> None:
    stream = io.StringIO()
    adapter = ConsoleAdapter(stream=stream)
    message = adapter.render(make_context("alert_overdue", channel="console"))
    adapter.deliver(message)
    printed = stream.getvalue()
    assert printed.startswith("# alert_overdue via console (email)")
    assert "To: Dana Reyes" in printed and message.body in printed


def test_a_card_rendered_elsewhere_is_kept_with_its_attachment(tmp_path: Path) -> None:
    card = CardAdapter(tasks_dir=tmp_path / "tasks").render(make_context(channel="card"))
    receipt = ConsoleAdapter(directory=tmp_path / "out").deliver(card)
    eml = message_from_bytes(Path(receipt.detail["eml"]).read_bytes(), policy=policy.default)
    [pdf] = list(eml.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content() == card.attachments[0].content


def test_missing_addresses_do_not_stop_a_local_run(tmp_path: Path) -> None:
    people = [{"name": "Sarah Whitfield", "title": "VP Engineering"}]
    context = make_context(channel="console", interviewers=people,
                           candidate={"name": "Maya Castellanos"})
    message = ConsoleAdapter(directory=tmp_path).render(context)
    assert message.headers["To"] == "Sarah Whitfield"
    assert message.headers["From"] == "Maya Castellanos"
