"""The voicemail channel: a call script that reads in under 30 seconds.

It goes to the candidate as a task (a folder of JSON tasks) or to a telephony
webhook, signed like `adapters.webhook`.  The playbook follows every
voicemail with an email at once; the task says so.
"""

from __future__ import annotations

from adapters._text import spoken_words
from adapters.base import DeliveryReceipt, TemplateAdapter, addresses, now
from adapters.message import Message, MessageContext
from adapters.rendering import Renderer
from adapters.tasks import CandidateTask, DirectoryTaskSink
from adapters.webhook import payload, post_signed

WORDS_PER_MINUTE = 150


def reading_seconds(script: str, words_per_minute: float = WORDS_PER_MINUTE) -> float:
    """How long ``script`` takes to read aloud (phone numbers digit by digit)."""
    return spoken_words(script) * 60 / words_per_minute


class VoicemailAdapter(TemplateAdapter):
    """Hands a voicemail script to the candidate (``tasks_dir``) or a telephony webhook."""

    channel = "voicemail"
    medium = "voicemail"

    def __init__(self, *, tasks_dir: str | None = None, webhook_url: str | None = None,
                 webhook_secret: str | bytes | None = None, timeout: float = 10.0,
                 templates: Renderer | str | None = None) -> None:
        super().__init__(templates=templates)
        if (tasks_dir is None) == (webhook_url is None):
            raise ValueError("give the voicemail channel either tasks_dir or webhook_url")
        if webhook_url is not None and not webhook_secret:
            raise ValueError("a telephony webhook needs webhook_secret to sign with")
        self.sink = DirectoryTaskSink(tasks_dir) if tasks_dir is not None else None
        self.webhook_url, self.webhook_secret, self.timeout = webhook_url, webhook_secret, timeout

    def recipients(self, context: MessageContext) -> tuple[str, ...]:
        return addresses(context, "phone", self.channel)

    def headers(self, context: MessageContext, subject: str) -> dict[str, str]:
        calls = "; ".join(f"{p.name}: {p.phone}" for p in context.audience())
        return {"X-Closer-Call": calls, "X-Closer-Then": "send the follow-up email at once"}

    def deliver(self, message: Message) -> DeliveryReceipt:
        if self.webhook_url is not None:
            assert self.webhook_secret is not None  # checked in __init__
            detail = post_signed(self.webhook_url, self.webhook_secret, payload(message),
                                 idempotency_key=message.message_id, channel=self.channel,
                                 timeout=self.timeout)
            return DeliveryReceipt(self.channel, message.message_id, "sent", now(), detail)
        assert self.sink is not None
        task = self.task(message)
        path = self.sink.put(task)
        return DeliveryReceipt(self.channel, message.message_id, "task", now(),
                               {"task": str(path), "seconds": round(reading_seconds(message.body))})

    @staticmethod
    def task(message: Message) -> CandidateTask:
        """The candidate's task: whom to call, the script, and the email to follow."""
        seconds = reading_seconds(message.body)
        calls = message.headers.get("X-Closer-Call", ", ".join(message.to))
        instructions = (f"Call {calls}. If nobody answers, leave this message "
                        f"(about {seconds:.0f} seconds):\n\n{message.body}\n\n"
                        "Then send the follow-up email straight away.")
        return CandidateTask(message.message_id, "voicemail", message.subject or "Voicemail",
                             instructions, due="now")
