"""One router per resource, aggregated by `api.app`."""

from api.routes import agenda, audit, candidacies, commands, events, health, messages

ROUTERS = [candidacies.router, commands.router, messages.router, events.router, agenda.router,
           health.router, audit.router]
