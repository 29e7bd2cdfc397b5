"""The email channel: real SMTP with STARTTLS or TLS, auth, and a stable Message-ID."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from typing import Any

from adapters.base import DeliveryReceipt, TemplateAdapter, addresses, now
from adapters.errors import DeliveryError, RenderError
from adapters.message import Message, MessageContext
from adapters.rendering import Renderer

SYSTEM_SENDER = "Closer <closer@localhost>"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to hand mail over.  ``starttls`` upgrades a plain connection;
    ``implicit_tls`` connects with TLS from the start (port 465)."""

    host: str = "localhost"
    port: int = 587
    starttls: bool = True
    implicit_tls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
    cafile: str | None = None  # trust this CA (e.g. a private relay's) besides the system's

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)


def message_id_header(message_id: str, domain: str = "closer.local") -> str:
    """The RFC 5322 Message-ID for a message id, the same on every retry."""
    return f"<{message_id}@{domain}>"


def mail_headers(context: MessageContext, subject: str, *, sender: str = SYSTEM_SENDER,
                 domain: str = "closer.local", strict: bool = True) -> dict[str, str]:
    """From/To/Subject/Message-ID for ``context``.

    The candidate sends what they author; Closer sends reminders and alerts.
    With ``strict`` a recipient without an email address is a `RenderError`.
    """
    if context.candidate_authored:
        if context.candidate.email:
            sender = formataddr((context.candidate.name, context.candidate.email))
        elif strict:
            raise RenderError("the candidate has no email address to send from")
        else:
            sender = context.candidate.name
    people = context.audience()
    if strict:
        addresses(context, "email", "email")
    to = ", ".join(formataddr((p.name, p.email)) if p.email else p.name for p in people)
    headers = {"From": sender, "To": to, "Subject": subject,
               "Message-ID": message_id_header(context.message_id, domain)}
    if not context.candidate_authored:
        headers["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to Closer
    return headers


def to_mime(message: Message) -> EmailMessage:
    """The message as a MIME email: its headers, its body, its attachments."""
    mime = EmailMessage()
    for name, value in message.headers.items():
        mime[name] = value
    if "Subject" not in mime:
        mime["Subject"] = message.subject
    mime["Date"] = formatdate(usegmt=True)
    mime.set_content(message.body)
    for attachment in message.attachments:
        maintype, _, subtype = attachment.mimetype.partition("/")
        mime.add_attachment(attachment.content, maintype=maintype, subtype=subtype,
                            filename=attachment.filename)
    return mime


def send_smtp(settings: SmtpSettings, message: Message, channel: str = "email") -> dict[str, Any]:
    """Hand ``message`` to the SMTP server; `DeliveryError` says if a retry may help."""
    mime = to_mime(message)
    sender = parseaddr(message.headers.get("From", ""))[1] or None

    def fail(reason: str, retryable: bool) -> DeliveryError:
        return DeliveryError(channel, message.message_id, reason, retryable=retryable)

    try:
        if settings.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout,
                context=settings.tls_context())
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            client.ehlo()
            if settings.starttls and not settings.implicit_tls:
                client.starttls(context=settings.tls_context())
                client.ehlo()
            if settings.username:
                client.login(settings.username, settings.password or "")
            refused = client.send_message(mime, from_addr=sender, to_addrs=list(message.to))
    except smtplib.SMTPRecipientsRefused as error:
        raise fail(f"every recipient was refused: {error.recipients}", False) from error
    except smtplib.SMTPAuthenticationError as error:
        raise fail(f"authentication failed ({error.smtp_code})", False) from error
    except smtplib.SMTPResponseException as error:
        # 4xx is the server asking us to come back later; 5xx is a refusal.
        raise fail(f"{error.smtp_code} {error.smtp_error!r}", 400 <= error.smtp_code < 500) \
            from error
    except smtplib.SMTPNotSupportedError as error:
        raise fail(f"the server lacks a required extension: {error}", False) from error
    except (smtplib.SMTPException, OSError) as error:
        raise fail(f"{type(error).__name__}: {error}", True) from error
    return {"message_id_header": mime["Message-ID"], "server": f"{settings.host}:{settings.port}",
            "refused": {k: list(v) for k, v in refused.items()}}


class EmailAdapter(TemplateAdapter):
    """Sends email over SMTP; the ``Message-ID`` is ``<{message_id}@{domain}>``."""

    channel = "email"
    medium = "email"

    def __init__(self, *, host: str = "localhost", port: int = 587, starttls: bool = True,
                 implicit_tls: bool = False, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0, cafile: str | None = None,
                 sender: str = SYSTEM_SENDER, domain: str = "closer.local",
                 templates: Renderer | str | None = None) -> None:
        super().__init__(templates=templates)
        self.settings = SmtpSettings(host, port, starttls, implicit_tls, username, password,
                                     timeout, cafile)
        self.sender = sender
        self.domain = domain

    def recipients(self, context: MessageContext) -> tuple[str, ...]:
        return addresses(context, "email", self.channel)

    def headers(self, context: MessageContext, subject: str) -> dict[str, str]:
        return mail_headers(context, subject, sender=self.sender, domain=self.domain)

    def deliver(self, message: Message) -> DeliveryReceipt:
        detail = send_smtp(self.settings, message, self.channel)
        return DeliveryReceipt(self.channel, message.message_id, "sent", now(), detail)
