"""Errors raised by the adapters: each names what went wrong and what to do."""

from __future__ import annotations


class AdapterError(Exception):
    """Base class of every adapter error."""


class TemplateError(AdapterError):
    """A template could not be rendered: it names the template and the variable."""

    def __init__(self, template: str, reason: str, *, variable: str | None = None,
                 line: int | None = None) -> None:
        self.template = template
        self.variable = variable
        self.line = line
        self.reason = reason
        where = f"template {template!r}" + (f" line {line}" if line else "")
        super().__init__(f"{where}: {reason}")


class RenderError(AdapterError):
    """The context lacks something a channel needs (e.g. an email address)."""


class UnknownChannel(AdapterError, LookupError):
    """No adapter is registered under the requested channel name."""


class PostalMailRefused(AdapterError, ValueError):
    """The playbook never uses postal mail: it arrives too late."""


class DeliveryError(AdapterError):
    """A delivery failed; ``retryable`` says whether trying again may succeed."""

    def __init__(self, channel: str, message_id: str, reason: str, *, retryable: bool) -> None:
        self.channel = channel
        self.message_id = message_id
        self.reason = reason
        self.retryable = retryable
        kind = "temporary" if retryable else "permanent"
        super().__init__(f"{channel} delivery of {message_id} failed ({kind}): {reason}")


class EditRefused(AdapterError, ValueError):
    """A person's edit of a message's body that is not recorded: why, and the proofing
    findings that refused it (none when the text itself was empty or too long)."""

    def __init__(self, reason: str, findings: list[dict[str, str]] | None = None) -> None:
        self.field = "body"
        self.reason = reason
        self.findings = list(findings or [])
        super().__init__(f"body: {reason}")


class StaleMessage(AdapterError):
    """A message changed since the version a person's form or `If-Match` expected."""

    def __init__(self, message_id: str, expected: int, actual: int) -> None:
        self.message_id = message_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"message {message_id} is at version {actual}, not {expected}: it "
                         "changed since it was read")
