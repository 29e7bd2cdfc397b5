"""API tokens: bearer secrets bound to one workspace and one role, stored only as hashes.

A token is an event-sourced aggregate in the same store as the candidacies (no
new SQL): its id is a UUIDv5 of the token's SHA-256, so verifying a token is
one lookup by id and the secret itself is never stored.  `closer token create`
prints the secret once.  Token events are not Candidacy events, so the
workspace event feed (`GET /events`) never shows them.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate

from api.roles import Role
from engine.clock import Clock, SystemClock

TOKEN_PREFIX = "closer_"
_NAMESPACE = uuid5(NAMESPACE_URL, "urn:closer:api-token")


class ApiToken(Aggregate):
    """One issued token: whose workspace, which role, and who acts with it."""

    class Issued(Aggregate.Created):
        workspace: str
        role: str
        user: str

    class Revoked(Aggregate.Event):
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.revoked = True

    def __init__(self, workspace: str, role: str, user: str) -> None:
        self.workspace = workspace
        self.role = role
        self.user = user
        self.revoked = False

    @property
    def active(self) -> bool:
        return not self.revoked

    def revoke(self, reason: str, clock: Clock) -> None:
        if self.active:
            self.trigger_event(self.Revoked, timestamp=clock.now(), reason=reason)

    @classmethod
    def issue(cls, token_hash: str, *, workspace: str, role: Role, user: str,
              clock: Clock) -> ApiToken:
        return cls._create(cls.Issued, id=token_id(token_hash), timestamp=clock.now(),
                           workspace=workspace, role=role.value, user=user)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's user, workspace and role."""

    user: str
    workspace: str
    role: Role


def hash_token(token: str) -> str:
    """The SHA-256 of a token, hex: the only form in which a token is kept."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_id(token_hash: str) -> UUID:
    return uuid5(_NAMESPACE, token_hash)


def create_token(app: Application[UUID], *, workspace: str, role: Role | str,
                 user: str | None = None, clock: Clock | None = None) -> str:
    """Issue a token and return its secret (shown once; only its hash is stored)."""
    role = Role(role)
    workspace = _label("workspace", workspace)
    user = _label("user", user or f"{role.value}@{workspace}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    app.save(ApiToken.issue(hash_token(token), workspace=workspace, role=role, user=user,
                            clock=clock or SystemClock()))
    return token


def revoke_token(app: Application[UUID], token: str, *, reason: str = "revoked",
                 clock: Clock | None = None) -> ApiToken:
    """Revoke an issued token for good (its secret, as printed once, identifies it).
    Processes that verified it in the last `TokenVerifier` ttl may accept it until then."""
    try:
        issued: Aggregate = app.repository.get(token_id(hash_token(token.strip())))
    except AggregateNotFoundError:
        raise ValueError("no such token: it was never issued here") from None
    if not isinstance(issued, ApiToken):
        raise ValueError("no such token: it was never issued here")
    issued.revoke(_label("reason", reason), clock or SystemClock())
    app.save(issued)
    return issued


def _label(name: str, value: str) -> str:
    value = value.strip()
    if not value or len(value) > 200 or not value.isprintable():
        raise ValueError(f"{name} must be 1-200 printable characters")
    return value


class TokenVerifier:
    """Verifies bearer tokens against the store, trusting a verified one for ``ttl`` seconds
    (so a revoked token stops working within ``ttl`` in every process, at once in the one
    that revoked it through `forget`)."""

    def __init__(self, app: Application[UUID], ttl: float = 30.0, max_entries: int = 10_000
                 ) -> None:
        self._app = app
        self._ttl = ttl
        self._max_entries = max_entries
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        """The principal of ``token`` if verified within the last ``ttl`` seconds (no I/O)."""
        return self.cached_hash(hash_token(token))

    def cached_hash(self, digest: str) -> Principal | None:
        """The principal of the token whose SHA-256 is ``digest``, if verified within the
        last ``ttl`` seconds (no I/O: a caller on the event loop needs no thread for it)."""
        with self._lock:
            cached = self._cache.get(digest)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def forget(self, token: str) -> None:
        """Drop ``token`` from the cache (after revoking it here)."""
        with self._lock:
            self._cache.pop(hash_token(token.strip()), None)

    def verify(self, token: str) -> Principal | None:
        """The principal of ``token``, or None when it is not a token we issued."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        principal = self.cached(token)
        if principal is not None:
            return principal
        return self.verify_hash(hash_token(token))

    def verify_hash(self, digest: str) -> Principal | None:
        """The principal of the token whose SHA-256 is ``digest`` (what a dashboard session
        keeps instead of the secret), or None when no active token has it."""
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        now = time.monotonic()
        try:
            issued: Aggregate = self._app.repository.get(token_id(digest))
        except AggregateNotFoundError:
            return None
        if not isinstance(issued, ApiToken) or not issued.active:
            return None
        principal = Principal(user=issued.user, workspace=issued.workspace,
                              role=Role(issued.role))
        if self._ttl > 0:
            with self._lock:
                if len(self._cache) >= self._max_entries:
                    self._cache.clear()
                self._cache[digest] = (now + self._ttl, principal)
        return principal
