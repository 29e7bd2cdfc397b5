"""The card channel: a printable thank-you card and a task to hand it in today.

The card is dropped at the company's reception the same day; it is never
posted (postal mail arrives too late).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

from adapters.base import DeliveryReceipt, TemplateAdapter, now
from adapters.errors import RenderError
from adapters.message import Attachment, Message, MessageContext
from adapters.rendering import Renderer, names
from adapters.tasks import CandidateTask, DirectoryTaskSink

_UNICODE_FONTS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
                  Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"))
_FIXED_DATE = datetime(2000, 1, 1, tzinfo=UTC)


def card_pdf(body: str, addressed_to: list[str], *, created: datetime = _FIXED_DATE,
             font_path: str | Path | None = None,
             fallback_fonts: tuple[Path, ...] = _UNICODE_FONTS) -> bytes:
    """An A6 card: a front naming who it is for, and the message inside.

    Built-in PDF fonts cover Latin-1 only; other scripts need ``font_path``
    (a TrueType font) or DejaVu Sans installed, else `RenderError`.
    """
    pdf = FPDF(orientation="L", unit="mm", format=(105, 148))  # A6
    pdf.set_creation_date(created)  # the same card gives the same bytes on a retry
    pdf.set_margins(12, 12, 12)
    pdf.set_auto_page_break(True, margin=10)
    family, italic = _font(pdf, "\n".join([body, *addressed_to]), font_path, fallback_fonts)
    pdf.add_page()
    pdf.set_font(family, "", 22)
    pdf.cell(0, 16, "Thank you", new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font(family, "", 10)
    for line in addressed_to:
        pdf.multi_cell(0, 5, line, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    pdf.set_font(family, italic, 11)
    pdf.multi_cell(0, 5.5, body, align="L", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _font(pdf: FPDF, text: str, font_path: str | Path | None,
          fallback_fonts: tuple[Path, ...]) -> tuple[str, str]:
    if font_path is None:
        try:
            text.encode("latin-1")
            return "Times", "I"
        except UnicodeEncodeError:
            font_path = next((p for p in fallback_fonts if p.exists()), None)
    if font_path is None or not Path(font_path).is_file():
        raise RenderError("the card text needs a Unicode font: set font_path to a .ttf file"
                          + (f" ({font_path} does not exist)" if font_path else ""))
    pdf.add_font("card", "", str(font_path))
    return "card", ""


class CardAdapter(TemplateAdapter):
    """Renders a card PDF and gives the candidate a "drop at reception today" task."""

    channel = "card"
    medium = "card"

    def __init__(self, *, tasks_dir: str | Path, font_path: str | Path | None = None,
                 templates: Renderer | str | None = None) -> None:
        super().__init__(templates=templates)
        self.sink = DirectoryTaskSink(tasks_dir)
        self.font_path = font_path

    def render(self, context: MessageContext) -> Message:
        message = super().render(context)
        people = context.addressees
        addressed_to = [f"{p.name}, {p.title}" for p in people] + [context.company]
        pdf = card_pdf(message.body, addressed_to, created=context.occurred_at or _FIXED_DATE,
                       font_path=self.font_path)
        day = (context.occurred_at or now()).astimezone(context.zone).date()
        return replace(
            message,
            subject=message.subject or f"Thank-you card for {names(people)}",
            attachments=(Attachment(f"card-{context.message_id}.pdf", "application/pdf", pdf),),
            headers={"X-Closer-Due": day.isoformat(),
                     "X-Closer-Where": f"{context.company} reception",
                     "X-Closer-For": "; ".join(addressed_to[:-1])})

    def deliver(self, message: Message) -> DeliveryReceipt:
        card = message.attachments[0]
        where = message.headers.get("X-Closer-Where", "reception")
        task = CandidateTask(
            message.message_id, self.channel,
            f"Drop your thank-you card at {where} today",
            f"Print the card {card.filename} (or copy it out by hand), sign it, and leave it "
            f"at {where} today for {message.headers.get('X-Closer-For', ', '.join(message.to))}."
            " Hand it in; do not post it.",
            due=message.headers.get("X-Closer-Due", now().date().isoformat()),
            files=(card.filename,))
        path = self.sink.put(task, {card.filename: card.content})
        saved = self.sink.directory / card.filename
        return DeliveryReceipt(self.channel, message.message_id, "task", now(),
                               {"task": str(path), "card": str(saved)})
