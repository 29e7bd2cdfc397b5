"""The email adapter against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from adapters_fixtures import SmtpServer, SmtpSink, free_port, make_context, smtp_server, tls_files
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from adapters.email import EmailAdapter
from adapters.errors import DeliveryError, RenderError

__all__ = ["smtp_server", "tls_files"]  # fixtures used by name


def plain(server: SmtpServer) -> EmailAdapter:
    return EmailAdapter(host=server.host, port=server.port, starttls=False, timeout=5)


def test_a_thank_you_arrives_with_recipients_subject_body_and_message_id(
        smtp_server: SmtpServer) -> None:
    adapter = plain(smtp_server)
    context = make_context()
    message = adapter.render(context)
    receipt = adapter.deliver(message)

    [received] = smtp_server.sink.received
    assert received.mail_from == "maya@example.org"
    assert received.rcpt_tos == ["sarah.whitfield@northwind.example",
                                 "john.okafor@northwind.example"]
    mail = received.message
    assert mail["Message-ID"] == f"<{context.message_id}@closer.local>"
    assert mail["Subject"] == "Thank you: Senior Backend Engineer interview"
    assert mail["From"] == "Maya Castellanos <maya@example.org>"
    assert "Sarah Whitfield <sarah.whitfield@northwind.example>" in mail["To"]
    assert mail.get_content().replace("\r\n", "\n").strip() == message.body
    assert receipt.status == "sent" and receipt.message_id == context.message_id
    report = adapter.report(receipt)
    assert report["detail"]["message_id_header"] == mail["Message-ID"]


def test_a_retry_carries_the_same_message_id(smtp_server: SmtpServer) -> None:
    adapter = plain(smtp_server)
    message = adapter.render(make_context())
    adapter.deliver(message)
    adapter.deliver(adapter.render(make_context()))
    ids = [r.message["Message-ID"] for r in smtp_server.sink.received]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_reminders_come_from_closer_to_the_candidate(smtp_server: SmtpServer) -> None:
    adapter = EmailAdapter(host=smtp_server.host, port=smtp_server.port, starttls=False,
                           sender="Closer <noreply@closer.example>")
    adapter.deliver(adapter.render(make_context("reminder_thank_you_due")))
    [received] = smtp_server.sink.received
    assert received.rcpt_tos == ["maya@example.org"]
    assert received.message["From"] == "Closer <noreply@closer.example>"
    assert received.message["Auto-Submitted"] == "auto-generated"
    assert "- Sarah Whitfield, VP Engineering" in received.message.get_content()


def test_starttls_and_login_are_used_when_configured(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticate(server, session, envelope, mechanism, auth_data):  # noqa: ANN001
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        # handled=False: let aiosmtpd answer 535 itself on a failure.
        return AuthResult(success=auth_data.password == b"app-password", handled=False)

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(),
                            tls_context=server_tls, require_starttls=True,
                            authenticator=authenticate, auth_require_tls=True)
    controller.start()
    try:
        good = EmailAdapter(host="127.0.0.1", port=controller.port, starttls=True,
                            username="maya", password="app-password", cafile=str(cert))
        good.deliver(good.render(make_context()))
        bad = EmailAdapter(host="127.0.0.1", port=controller.port, starttls=True,
                           username="maya", password="wrong", cafile=str(cert))
        with pytest.raises(DeliveryError, match="authentication failed") as caught:
            bad.deliver(bad.render(make_context()))
        assert not caught.value.retryable
    finally:
        controller.stop()
    assert len(sink.received) == 1
    assert logins[0] == (b"maya", b"app-password")
    assert logins[1:] and set(logins[1:]) == {(b"maya", b"wrong")}  # smtplib tries each mechanism


def test_a_refused_recipient_is_a_permanent_failure(smtp_server: SmtpServer) -> None:
    smtp_server.sink.refuse = {"sarah.whitfield@northwind.example",
                               "john.okafor@northwind.example"}
    adapter = plain(smtp_server)
    with pytest.raises(DeliveryError, match="refused") as caught:
        adapter.deliver(adapter.render(make_context()))
    assert not caught.value.retryable and smtp_server.sink.received == []


def test_a_partly_refused_message_reports_who_was_refused(smtp_server: SmtpServer) -> None:
    smtp_server.sink.refuse = {"john.okafor@northwind.example"}
    adapter = plain(smtp_server)
    receipt = adapter.deliver(adapter.render(make_context()))
    assert list(receipt.detail["refused"]) == ["john.okafor@northwind.example"]
    assert smtp_server.sink.received[0].rcpt_tos == ["sarah.whitfield@northwind.example"]


def test_a_temporary_refusal_can_be_retried(smtp_server: SmtpServer) -> None:
    async def busy(server, session, envelope):  # noqa: ANN001
        return "451 4.3.0 try again later"

    smtp_server.sink.handle_DATA = busy  # type: ignore[method-assign]
    adapter = plain(smtp_server)
    with pytest.raises(DeliveryError, match="451") as caught:
        adapter.deliver(adapter.render(make_context()))
    assert caught.value.retryable


def test_an_unreachable_server_can_be_retried() -> None:
    adapter = EmailAdapter(host="127.0.0.1", port=free_port(), starttls=False, timeout=2)
    with pytest.raises(DeliveryError, match="temporary") as caught:
        adapter.deliver(adapter.render(make_context()))
    assert caught.value.retryable and caught.value.channel == "email"


def test_an_interviewer_without_an_address_cannot_be_emailed() -> None:
    people = [{"name": "Sarah Whitfield", "title": "VP Engineering"}]
    with pytest.raises(RenderError, match="Sarah Whitfield has no email"):
        EmailAdapter(host="127.0.0.1", port=1).render(make_context(interviewers=people))
