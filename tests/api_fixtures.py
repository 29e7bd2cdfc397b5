"""Fixtures of the HTTP API tests, loaded with `pytest_plugins = ["api_fixtures"]`:
`api` (the app over the test's store and fixed clock), `client_for(role, workspace)` and
`client` (a recruiter of the `agency` workspace)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from api_support import WORKSPACE, TestClient
from fastapi import FastAPI

from api.app import create_app
from api.auth import create_token
from api.settings import Settings
from engine.application import Candidacies


@pytest.fixture
def api(candidacies: Candidacies, database_url: str) -> FastAPI:
    """The app over the test's application (fixed clock, fresh store)."""
    settings = Settings(database_url=database_url, sse_poll_seconds=0.02,
                        sse_heartbeat_seconds=0.5)
    return create_app(settings, candidacies=candidacies)


ClientFor = Callable[..., TestClient]


@pytest.fixture
def client_for(api: FastAPI, candidacies: Candidacies) -> Iterator[ClientFor]:
    """``client_for(role, workspace=WORKSPACE)``: a client holding a fresh token."""
    clients: list[TestClient] = []

    def make(role: str = "recruiter", workspace: str = WORKSPACE) -> TestClient:
        token = create_token(candidacies, workspace=workspace, role=role)
        client = TestClient(api, headers={"Authorization": f"Bearer {token}"})
        client.token = token  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(client_for: ClientFor) -> TestClient:
    """A recruiter of the `agency` workspace."""
    return client_for("recruiter")
