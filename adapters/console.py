"""The file/console channel, for local runs and the demo.

Writes each message to a folder as ``<message_id>.eml`` (a complete MIME
email, attachments included) and ``<message_id>.txt``, and/or prints it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from adapters.base import DeliveryReceipt, TemplateAdapter, now
from adapters.email import SYSTEM_SENDER, mail_headers, to_mime
from adapters.message import Message, MessageContext
from adapters.rendering import Renderer
from adapters.tasks import write_atomically


def as_text(message: Message) -> str:
    """A human-readable rendering of ``message``."""
    lines = [f"# {message.kind.value} via {message.channel} ({message.medium})",
             f"Message-Id: {message.message_id}", f"To: {', '.join(message.to)}"]
    if message.subject:
        lines.append(f"Subject: {message.subject}")
    lines += [f"Attachment: {a.filename} ({a.mimetype}, {len(a.content)} bytes)"
              for a in message.attachments]
    return "\n".join(lines) + "\n\n" + message.body + "\n"


class ConsoleAdapter(TemplateAdapter):
    """Writes messages to ``directory`` (.eml and .txt) and/or prints them to ``stream``."""

    channel = "console"
    medium = None  # the kind's own medium

    def __init__(self, *, directory: str | Path | None = None, stream: TextIO | None = None,
                 print_messages: bool | None = None, sender: str = SYSTEM_SENDER,
                 domain: str = "closer.local", templates: Renderer | str | None = None) -> None:
        super().__init__(templates=templates)
        self.directory = Path(directory) if directory is not None else None
        # Without a folder there is nowhere else for the message to go: print it.
        printing = print_messages if print_messages is not None else directory is None
        self.stream = (stream or sys.stdout) if printing else None
        self.sender, self.domain = sender, domain

    def headers(self, context: MessageContext, subject: str) -> dict[str, str]:
        return mail_headers(context, subject, sender=self.sender, domain=self.domain,
                            strict=False)

    def deliver(self, message: Message) -> DeliveryReceipt:
        detail: dict[str, str] = {}
        if self.directory is not None:
            eml = self.directory / f"{message.message_id}.eml"
            txt = self.directory / f"{message.message_id}.txt"
            write_atomically(eml, bytes(to_mime(message)))
            write_atomically(txt, as_text(message).encode())
            detail = {"eml": str(eml), "txt": str(txt)}
        if self.stream is not None:
            self.stream.write(as_text(message) + "\n")
            self.stream.flush()
        return DeliveryReceipt(self.channel, message.message_id, "sent", now(), detail)
