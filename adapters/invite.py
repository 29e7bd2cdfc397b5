"""The calendar channel (`CalendarAdapter`): an RFC 5545 invite for the next step.

The event UID comes from the message id, so a resent invite updates the
same event instead of adding a second one.  The invite is written to a
folder as ``<message_id>.ics`` or emailed over SMTP as an attachment.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import icalendar

from adapters.base import DeliveryReceipt, TemplateAdapter, addresses, now
from adapters.email import SYSTEM_SENDER, SmtpSettings, mail_headers, send_smtp
from adapters.message import Attachment, Interviewer, Message, MessageContext, Person
from adapters.rendering import Renderer
from adapters.tasks import write_atomically
from adapters.vtimezone import vtimezone

PRODID = "-//Closer//Closer next steps//EN"


def invite(context: MessageContext, summary: str, description: str,
           domain: str = "closer.local") -> bytes:
    """The ``.ics`` for ``context.next_step``, its start kept in the candidacy's zone."""
    step = context.next_step
    assert step is not None and step.scheduled_for is not None  # the context validates it
    start = step.scheduled_for.astimezone(context.zone)
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", f"{context.message_id}@{domain}")
    # DTSTAMP from the triggering event, not the clock: a retry yields the same bytes.
    event.add("dtstamp", (context.occurred_at or step.scheduled_for).astimezone(UTC))
    event.add("sequence", 0)
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=step.duration_minutes))
    event.add("summary", summary)
    event.add("description", description)
    if step.location:
        event.add("location", step.location)
    if context.candidate.email:
        event.add("organizer", _address(context.candidate.email, context.candidate.name))
    people: tuple[Person | Interviewer, ...] = (context.candidate, *context.addressees)
    for person in people:
        if person.email:
            event.add("attendee", _address(person.email, person.name, attendee=True))
    calendar.add_component(event)
    if calendar.get_missing_tzids():  # the candidacy's zone, unless it is UTC
        # First, as add_missing_timezones puts it: a reader meets it before the times.
        calendar.subcomponents.insert(0, vtimezone(context.zone, start))
    ical: bytes = calendar.to_ical()  # icalendar leaves to_ical unannotated
    return ical


def _address(email: str, name: str, attendee: bool = False) -> icalendar.vCalAddress:
    address = icalendar.vCalAddress(f"mailto:{email}")
    address.params["cn"] = name
    if attendee:
        address.params["role"] = "REQ-PARTICIPANT"
        address.params["partstat"] = "NEEDS-ACTION"
    return address


class CalendarAdapter(TemplateAdapter):
    """Writes the invite to ``directory`` or, given ``smtp`` settings, emails it."""

    channel = "calendar"
    medium = "calendar"

    def __init__(self, *, directory: str | Path | None = None, smtp: dict[str, Any] | None = None,
                 sender: str = SYSTEM_SENDER, domain: str = "closer.local",
                 templates: Renderer | str | None = None) -> None:
        super().__init__(templates=templates)
        if (directory is None) == (smtp is None):
            raise ValueError("give the calendar channel either directory or smtp settings")
        self.directory = Path(directory) if directory is not None else None
        self.smtp = SmtpSettings(**smtp) if smtp is not None else None
        self.sender, self.domain = sender, domain

    def recipients(self, context: MessageContext) -> tuple[str, ...]:
        if self.smtp is not None:
            return addresses(context, "email", self.channel)
        return super().recipients(context)

    def headers(self, context: MessageContext, subject: str) -> dict[str, str]:
        return mail_headers(context, subject, sender=self.sender, domain=self.domain,
                            strict=self.smtp is not None)

    def render(self, context: MessageContext) -> Message:
        message = super().render(context)
        ics = invite(context, message.subject, message.body, self.domain)
        return replace(message, attachments=(
            Attachment("invite.ics", "text/calendar", ics),))

    def deliver(self, message: Message) -> DeliveryReceipt:
        if self.smtp is not None:
            detail = send_smtp(self.smtp, message, self.channel)
            return DeliveryReceipt(self.channel, message.message_id, "sent", now(), detail)
        assert self.directory is not None
        path = self.directory / f"{message.message_id}.ics"
        write_atomically(path, message.attachments[0].content)
        return DeliveryReceipt(self.channel, message.message_id, "sent", now(),
                               {"file": str(path)})


