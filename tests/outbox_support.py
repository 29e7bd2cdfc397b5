"""The outbox as scheduler-driven tests need it: every channel delivered on the console at
once, so what the policy decides is delivered when it is decided (decided → dispatched →
delivered), as a healthy outbox would."""

from __future__ import annotations

import io

from adapters.console import ConsoleAdapter
from adapters.outbox import Dispatcher
from engine.application import Candidacies

_OUTBOXES: dict[int, Dispatcher] = {}


def console_outbox(app: Candidacies) -> Dispatcher:
    """The app's dispatcher, delivering every channel on a console (kept per app)."""
    dispatcher = _OUTBOXES.get(id(app))
    if dispatcher is None or dispatcher.app is not app:
        console = ConsoleAdapter(stream=io.StringIO())
        dispatcher = _OUTBOXES[id(app)] = Dispatcher(app, adapters={
            channel: console for channel in ("email", "card", "voicemail", "calendar")})
    return dispatcher
