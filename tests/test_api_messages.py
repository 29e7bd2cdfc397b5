"""`GET /candidacies/{id}/messages`: the outbox's messages of one candidacy, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters_fixtures import SmtpServer, smtp_server  # noqa: F401
from api_support import ok, problem
from builders import interview

from adapters.email import EmailAdapter
from adapters.outbox import Dispatcher
from engine.application import Candidacies
from engine.scheduler import tick

pytest_plugins = ["api_fixtures"]  # api, client and client_for


def test_messages_show_the_thank_you_the_outbox_sent(
        client: Any, client_for: Any, candidacies: Candidacies,
        smtp_server: SmtpServer) -> None:  # noqa: F811
    # A video interview with Daniel Whitfield (who has an email address on record).
    candidacy_id = ok(client.post("/candidacies", json=interview(format="video"))).json()["id"]
    ok(client.post(f"/candidacies/{candidacy_id}/no-hesitations"))
    ok(client.post(f"/candidacies/{candidacy_id}/next-step",
                   json={"description": "a systems design interview"}))
    assert ok(client.get(f"/candidacies/{candidacy_id}/messages")).json() == {"messages": []}

    tick(candidacies, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    email = EmailAdapter(host=smtp_server.host, port=smtp_server.port, starttls=False)
    Dispatcher(candidacies, adapters={"email": email}).run_once()

    [message] = ok(client.get(f"/candidacies/{candidacy_id}/messages")).json()["messages"]
    assert (message["kind"], message["channel"], message["status"]) == (
        "thank_you", "email", "sent")
    assert message["attempts"] == 1 and message["findings"] == []
    assert message["trigger"]["type"] == "ThankYouDecided"
    assert len(smtp_server.sink.received) == 1

    # Another workspace never learns the candidacy exists.
    other = client_for("admin", workspace="elsewhere")
    problem(other.get(f"/candidacies/{candidacy_id}/messages"), 404, "not-found")
