"""The adapter protocol and the registry of channels.

An adapter does three things:

* ``render(context) -> Message``: turn a `MessageContext` into a message for
  its channel (pure: the same context gives the same message);
* ``deliver(message) -> DeliveryReceipt``: hand it over for real, raising
  `DeliveryError` (``retryable`` or not) when that fails;
* ``report(receipt) -> dict``: a JSON-ready summary for the history.

Proofing sits between render and deliver (see `adapters.proofing.proof`).
Built-in adapters are registered by name; others are found through the
``closer.adapters`` entry point group, each entry point naming a factory
(a class or callable taking keyword settings and returning an adapter).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

import structlog

from adapters.errors import AdapterError, PostalMailRefused, RenderError, UnknownChannel
from adapters.message import DEFAULT_MEDIUM, Message, MessageContext
from adapters.rendering import Renderer

ENTRY_POINT_GROUP = "closer.adapters"
_POSTAL_WORDS = frozenset({"postal", "mail", "letter", "letters", "snailmail", "postage", "usps"})
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """Proof that a channel accepted a message, with channel-specific detail."""

    channel: str
    message_id: str
    status: str  # "sent" (left our hands) or "task" (handed to the candidate to do)
    delivered_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """What every channel implements."""

    channel: str

    def render(self, context: MessageContext) -> Message: ...

    def deliver(self, message: Message) -> DeliveryReceipt: ...

    def report(self, receipt: DeliveryReceipt) -> dict[str, Any]: ...


class TemplateAdapter:
    """Shared render and report for the built-ins; subclasses add ``deliver``.

    ``medium`` names the templates used (None: the kind's default medium).
    """

    channel: ClassVar[str] = ""
    medium: ClassVar[str | None] = None

    def __init__(self, *, templates: Renderer | str | None = None) -> None:
        self.renderer = templates if isinstance(templates, Renderer) else Renderer(templates)

    def render(self, context: MessageContext) -> Message:
        medium = self.medium or DEFAULT_MEDIUM[context.kind]
        rendered = self.renderer.render(context, medium)
        return Message(kind=context.kind, channel=self.channel, medium=medium,
                       to=self.recipients(context), subject=rendered.subject,
                       body=rendered.body, message_id=context.message_id,
                       headers=self.headers(context, rendered.subject))

    def recipients(self, context: MessageContext) -> tuple[str, ...]:
        """Who the message goes to, as this channel addresses them (names by default)."""
        return tuple(person.name for person in context.audience())

    def headers(self, context: MessageContext, subject: str) -> dict[str, str]:
        return {}

    def report(self, receipt: DeliveryReceipt) -> dict[str, Any]:
        """The receipt as JSON-ready data."""
        data = asdict(receipt)
        data["delivered_at"] = receipt.delivered_at.isoformat()
        return data


def addresses(context: MessageContext, attribute: str, channel: str) -> tuple[str, ...]:
    """Each recipient's ``attribute`` (email, phone), or `RenderError` naming who lacks it."""
    found = []
    for person in context.audience():
        value = getattr(person, attribute)
        if not value:
            raise RenderError(f"{person.name} has no {attribute} recorded; the {channel} "
                              f"channel needs one (route this message elsewhere)")
        found.append(value)
    return tuple(found)


def now() -> datetime:
    return datetime.now(UTC)


_BUILT_INS = {
    "email": "adapters.email:EmailAdapter",
    "voicemail": "adapters.voicemail:VoicemailAdapter",
    "card": "adapters.card:CardAdapter",
    "calendar": "adapters.invite:CalendarAdapter",
    "webhook": "adapters.webhook:WebhookAdapter",
    "console": "adapters.console:ConsoleAdapter",
    "file": "adapters.console:ConsoleAdapter",
}

Factory = Callable[..., Adapter]


def refuse_postal(name: str) -> None:
    """Raise `PostalMailRefused` for a channel that would go by post."""
    plain = re.sub(r"\be[-_ ]mail", "email", name.strip().lower())
    words = set(re.split(r"[^a-z0-9]+", plain))
    if words & _POSTAL_WORDS or plain == "post":
        raise PostalMailRefused(
            f"channel {name!r} looks like postal mail, which the playbook never uses (it "
            "arrives too late): use 'card' (handed in at reception), 'email' or 'voicemail'")


class Registry:
    """Channel name → adapter factory, built-ins first, then entry points."""

    def __init__(self, *, discover: bool = True) -> None:
        self._factories: dict[str, Factory | str] = dict(_BUILT_INS)
        self.problems: dict[str, str] = {}  # plugins that could not be registered, and why
        if discover:
            self.discover()

    def register(self, name: str, factory: Factory | str, *, replace: bool = False) -> None:
        """Register ``factory`` (or a "module:attribute" path) under ``name``."""
        refuse_postal(name)
        if name in self._factories and not replace:
            raise ValueError(f"channel {name!r} is already registered; pass replace=True")
        self._factories[name] = factory

    def discover(self) -> None:
        """Register third-party adapters from the ``closer.adapters`` entry points."""
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                self.register(point.name, point.value)
            except (PostalMailRefused, ValueError) as error:
                self.problems[point.name] = str(error)
                log.warning("adapter_plugin_refused", channel=point.name, reason=str(error))

    def names(self) -> list[str]:
        return sorted(self._factories)

    def factory(self, name: str) -> Factory:
        """The factory for ``name``; `UnknownChannel` or `PostalMailRefused` otherwise."""
        refuse_postal(name)
        try:
            factory = self._factories[name]
        except KeyError:
            raise UnknownChannel(f"no adapter for channel {name!r}; known channels: "
                                 f"{', '.join(self.names())}") from None
        if isinstance(factory, str):
            module, _, attribute = factory.partition(":")
            try:
                factory = getattr(import_module(module), attribute)
            except (ImportError, AttributeError) as error:
                raise AdapterError(f"the adapter for channel {name!r} ({module}:{attribute}) "
                                   f"could not be loaded: {error}") from error
            self._factories[name] = factory
        return factory

    def create(self, name: str, **settings: Any) -> Adapter:
        """A new adapter for channel ``name`` built with ``settings``."""
        adapter = self.factory(name)(**settings)
        if not isinstance(adapter, Adapter):
            raise TypeError(f"the factory for {name!r} returned {adapter!r}, "
                            "which lacks render/deliver/report")
        return adapter
