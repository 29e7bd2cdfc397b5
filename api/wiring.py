"""Builds the engine's application from the settings: the one place that wires them."""

from __future__ import annotations

from adapters import outbox_rows
from api.settings import Settings, get_settings
from engine.application import Candidacies
from engine.clock import Clock, SystemClock
from engine.store import eventsourcing_env


def build_candidacies(settings: Settings | None = None, clock: Clock | None = None) -> Candidacies:
    """The application on the configured store (keep one per process)."""
    settings = settings or get_settings()
    app = Candidacies(eventsourcing_env(settings.database_url), clock=clock or SystemClock(),
                      recent=settings.recent_candidacies)
    outbox_rows.use(app)  # the outbox's tables: its rows, and the store's clock, read them
    return app
