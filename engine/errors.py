"""One error type per kind of failure; every one names the problem."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


class CloserError(Exception):
    """Base class of every error Closer reports to its users."""


class InvalidInput(CloserError):
    """A command's data is wrong: names the field and why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class IllegalCommand(CloserError):
    """The playbook does not allow this command at the candidacy's current stage."""

    def __init__(self, command: str, stage: str, allowed: Sequence[str], why: str = "") -> None:
        self.command = command
        self.stage = stage
        self.allowed = list(allowed)
        self.why = why
        allowed_text = ", ".join(self.allowed) if self.allowed else "none"
        detail = f" ({why})" if why else ""
        super().__init__(
            f"cannot {command} at stage '{stage}'{detail}; allowed here: {allowed_text}"
        )


class CandidacyNotFound(CloserError):
    """No candidacy with this id in this workspace (another workspace's ids look the same)."""

    def __init__(self, candidacy_id: object) -> None:
        self.candidacy_id = candidacy_id
        super().__init__(f"no candidacy {candidacy_id}")


class VersionConflict(CloserError):
    """The candidacy changed since the version the command expected."""

    def __init__(self, candidacy_id: object, expected: int | None, actual: int | None) -> None:
        self.candidacy_id = candidacy_id
        self.expected = expected
        self.actual = actual
        if expected is None:
            text = f"candidacy {candidacy_id} was changed concurrently; reload and retry"
        else:
            text = f"candidacy {candidacy_id} is at version {actual}, not {expected}"
        super().__init__(text)


class CandidacyErased(CloserError):
    """The candidacy's personal data was erased (`closer erase`): it takes no more
    commands; its stages, times and rules still read, its personal fields as "erased"."""

    def __init__(self, candidacy_id: object) -> None:
        self.candidacy_id = candidacy_id
        super().__init__(f"candidacy {candidacy_id} was erased: its personal data is "
                         "destroyed and it takes no more commands")


class IdempotencyKeyReused(CloserError):
    """An idempotency key was sent again with a different command."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used for a different command")


class CorruptHistory(CloserError):
    """A stored event (or snapshot) cannot be decoded, upcast or applied: the aggregate it
    belongs to is quarantined (`closer doctor` lists every such record)."""

    def __init__(self, originator_id: object, version: int, reason: str, *,
                 topic: str = "", notification_id: int | None = None,
                 snapshot: bool = False) -> None:
        self.originator_id = originator_id
        self.version = version
        self.reason = reason
        self.topic = topic
        self.notification_id = notification_id
        self.snapshot = snapshot
        what = "snapshot" if self.snapshot else "event"
        at = f" (notification {notification_id})" if notification_id is not None else ""
        super().__init__(f"the history of {originator_id} cannot be read: its {what} at "
                         f"version {version}{at} is corrupt: {reason}")

    def at_notification(self, notification_id: int | None) -> CorruptHistory:
        """The same error, naming the record's position in the event log."""
        return CorruptHistory(self.originator_id, self.version, self.reason, topic=self.topic,
                              notification_id=notification_id, snapshot=self.snapshot)


class PlaybookRule(CloserError):
    """A rule of the playbook (patience, spacing, the pest line) refuses a person's command
    now; an explicit override with a reason lets it through, recorded on the event."""

    def __init__(self, command: str, stage: str, rule: str, reason: str,
                 allowed_from: datetime | None = None) -> None:
        self.command = command
        self.stage = stage
        self.rule = rule
        self.reason = reason
        self.allowed_from = allowed_from
        super().__init__(f"cannot {command} now: {reason} (rule {rule}); to do it anyway, "
                         f"send an override with a reason")
