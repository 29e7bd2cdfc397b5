"""One router per resource, aggregated by `api.app`."""

from api.routes import agenda, candidacies, commands, events, health

ROUTERS = [candidacies.router, commands.router, events.router, agenda.router, health.router]
