"""The voicemail adapter: a short script, as a candidate task or to a telephony webhook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adapters_fixtures import SECRET, HttpReceiver, http_receiver, make_context

from adapters.errors import RenderError
from adapters.voicemail import VoicemailAdapter, reading_seconds

__all__ = ["http_receiver"]  # a fixture used by name


@pytest.mark.parametrize("kind", ["thank_you", "nudge_voicemail", "offer_nudge"])
def test_every_voicemail_script_reads_in_under_thirty_seconds(kind: str, tmp_path: Path) -> None:
    message = VoicemailAdapter(tasks_dir=str(tmp_path)).render(
        make_context(kind, channel="voicemail"))
    assert message.medium == "voicemail"
    assert 10 < reading_seconds(message.body) < 30


def test_the_script_becomes_a_task_with_the_email_to_follow(tmp_path: Path) -> None:
    adapter = VoicemailAdapter(tasks_dir=str(tmp_path))
    context = make_context("nudge_voicemail", channel="voicemail", recipients=["Sarah Whitfield"])
    message = adapter.render(context)
    assert message.to == ("+44 20 7946 0100",)
    receipt = adapter.deliver(message)
    adapter.deliver(message)  # a retry rewrites the same task

    assert [p.name for p in tmp_path.iterdir()] == [f"{context.message_id}.json"]
    task = json.loads(Path(receipt.detail["task"]).read_text())
    assert task["channel"] == "voicemail" and task["due"] == "now"
    assert "Call Sarah Whitfield: +44 20 7946 0100" in task["instructions"]
    assert message.body in task["instructions"]
    assert task["instructions"].endswith("Then send the follow-up email straight away.")
    assert receipt.status == "task"


def test_a_telephony_webhook_gets_the_signed_script(http_receiver: HttpReceiver,
                                                     tmp_path: Path) -> None:
    adapter = VoicemailAdapter(webhook_url=http_receiver.url, webhook_secret=SECRET)
    context = make_context("thank_you", channel="voicemail")
    message = adapter.render(context)
    receipt = adapter.deliver(message)
    [request] = http_receiver.requests
    assert request["valid"] and request["headers"]["Idempotency-Key"] == context.message_id
    data = http_receiver.applied[context.message_id]
    assert data["medium"] == "voicemail" and data["body"] == message.body
    assert data["to"] == ["+44 20 7946 0100", "+44 20 7946 0101"]
    assert receipt.status == "sent"


def test_an_interviewer_without_a_phone_cannot_get_a_voicemail(tmp_path: Path) -> None:
    people = [{"name": "Sarah Whitfield", "title": "VP Engineering"}]
    with pytest.raises(RenderError, match="Sarah Whitfield has no phone"):
        VoicemailAdapter(tasks_dir=str(tmp_path)).render(make_context(interviewers=people))


def test_the_voicemail_channel_needs_exactly_one_destination(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either"):
        VoicemailAdapter()
    with pytest.raises(ValueError, match="either"):
        VoicemailAdapter(tasks_dir=str(tmp_path), webhook_url="http://127.0.0.1:9/")
    with pytest.raises(ValueError, match="secret"):
        VoicemailAdapter(webhook_url="http://127.0.0.1:9/")


def test_phone_numbers_are_read_digit_by_digit() -> None:
    assert reading_seconds("Call me on +44 20 7946 0958.") == pytest.approx((3 + 12) * 60 / 150)
