"""One router per resource, aggregated by `api.app`."""

from api.routes import agenda, audit, candidacies, commands, events, health, messages, policies

ROUTERS = [candidacies.router, commands.router, messages.router, events.router, agenda.router,
           policies.router, health.router, audit.router]
