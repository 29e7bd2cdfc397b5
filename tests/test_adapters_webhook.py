"""The webhook adapter against a real HTTP server on 127.0.0.1 that checks signatures."""

from __future__ import annotations

import base64
import json
import time

import pytest
from adapters_fixtures import SECRET, HttpReceiver, free_port, http_receiver, make_context

from adapters.errors import DeliveryError
from adapters.webhook import WebhookAdapter, sign, verify

__all__ = ["http_receiver"]  # a fixture used by name


def test_a_signed_post_is_verified_and_applied(http_receiver: HttpReceiver) -> None:
    adapter = WebhookAdapter(url=http_receiver.url, secret=SECRET)
    context = make_context("alert_stalled", channel="webhook")
    message = adapter.render(context)
    receipt = adapter.deliver(message)

    [request] = http_receiver.requests
    assert request["valid"] and request["path"] == "/hooks/closer"
    assert request["headers"]["Idempotency-Key"] == context.message_id
    assert request["headers"]["Content-Type"] == "application/json"
    data = http_receiver.applied[context.message_id]
    assert data["kind"] == "alert_stalled" and data["to"] == ["Dana Reyes"]
    assert data["subject"] == "Stalled: Maya Castellanos, Senior Backend Engineer at Northwind Labs"
    assert data["body"] == message.body
    assert data["headers"]["X-Closer-Candidacy"] == "candidacy-1"
    assert receipt.status == "sent" and receipt.detail["status"] == 200


def test_a_redelivery_is_applied_once(http_receiver: HttpReceiver) -> None:
    adapter = WebhookAdapter(url=http_receiver.url, secret=SECRET)
    for _ in range(3):
        adapter.deliver(adapter.render(make_context(channel="webhook")))
    assert len(http_receiver.requests) == 3 and len(http_receiver.applied) == 1
    bodies = {r["body"] for r in http_receiver.requests}
    assert len(bodies) == 1  # the same bytes every time, so the key means the same message
    assert [json.loads(r["body"])["message_id"] for r in http_receiver.requests][0] in \
        http_receiver.applied


def test_attachments_travel_base64_encoded(http_receiver: HttpReceiver, tmp_path) -> None:
    from adapters.card import CardAdapter

    card = CardAdapter(tasks_dir=tmp_path).render(make_context(channel="webhook"))
    WebhookAdapter(url=http_receiver.url, secret=SECRET).deliver(card)
    [data] = http_receiver.applied.values()
    pdf = base64.b64decode(data["attachments"][0]["content_base64"])
    assert pdf == card.attachments[0].content and pdf.startswith(b"%PDF")


def test_a_wrong_secret_is_refused_for_good(http_receiver: HttpReceiver) -> None:
    adapter = WebhookAdapter(url=http_receiver.url, secret="not-the-secret")
    with pytest.raises(DeliveryError, match="HTTP 401") as caught:
        adapter.deliver(adapter.render(make_context(channel="webhook")))
    assert not caught.value.retryable and http_receiver.applied == {}


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (429, True), (400, False)])
def test_server_errors_say_whether_to_retry(http_receiver: HttpReceiver, status: int,
                                            retryable: bool) -> None:
    http_receiver.status_override = status
    adapter = WebhookAdapter(url=http_receiver.url, secret=SECRET)
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
        adapter.deliver(adapter.render(make_context(channel="webhook")))
    assert caught.value.retryable is retryable


def test_an_unreachable_receiver_can_be_retried() -> None:
    adapter = WebhookAdapter(url=f"http://127.0.0.1:{free_port()}/x", secret=SECRET, timeout=2)
    with pytest.raises(DeliveryError) as caught:
        adapter.deliver(adapter.render(make_context(channel="webhook")))
    assert caught.value.retryable


def test_verify_checks_the_body_the_secret_and_freshness() -> None:
    body = b'{"a":1}'
    stamp = str(int(time.time()))
    headers = {"X-Closer-Timestamp": stamp, "X-Closer-Signature": sign(SECRET, stamp, body)}
    assert verify(SECRET, headers, body)
    assert not verify(SECRET, headers, b'{"a":2}')
    assert not verify("other", headers, body)
    assert not verify(SECRET, headers, body, at=time.time() + 3600)
    assert not verify(SECRET, {"X-Closer-Timestamp": "soon"}, body)


def test_a_webhook_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookAdapter(url="http://127.0.0.1:9/", secret="")
