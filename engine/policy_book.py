"""The published cadence policies, by name and version.

A candidacy names the policy version it runs under; that version never
changes under it (editing a policy means publishing a new version, and moving
a candidacy to it is an explicit, recorded `migrate_policy`).  Versions are
stored as small aggregates in the same event store, so every process agrees;
the built-in ``playbook`` version 1 is always there.
"""

from __future__ import annotations

import re
import threading
from typing import Any, NamedTuple
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from engine.errors import InvalidInput
from engine.policy import CadencePolicy, default_policy, parse_policy, policy_to_toml


class PublishedPolicy(Aggregate):
    """One published policy version, kept as its canonical TOML."""

    class Published(Aggregate.Created):
        name: str
        version: int
        toml: str

    def __init__(self, name: str, version: int, toml: str) -> None:
        self.name = name
        self.version = version
        self.toml = toml

    @staticmethod
    def id_for(name: str, version: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"closer:policy:{name}:{version}")


class StartingPolicy(Aggregate):
    """The published version a workspace's new candidacies start on when their interview
    names none (without one chosen: the application's default, ``playbook@1``)."""

    class Chosen(Aggregate.Created):
        workspace: str
        policy: dict[str, Any]
        actor: str

    class Changed(Aggregate.Event):
        policy: dict[str, Any]
        previous: dict[str, Any]
        actor: str

        def apply(self, aggregate: Any) -> None:
            aggregate.policy = self.policy

    def __init__(self, workspace: str, policy: dict[str, Any], actor: str) -> None:
        self.workspace = workspace
        self.policy = policy

    @staticmethod
    def id_for(workspace: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"closer:starting-policy:{workspace}")


class PolicyRef(NamedTuple):
    """A policy version as people write it: ``NAME@VERSION`` (``playbook@2``)."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    def as_dict(self) -> dict[str, Any]:
        """As a candidacy records it: ``{"name", "version"}``."""
        return {"name": self.name, "version": self.version}


_REF = re.compile(r"^([a-z0-9][a-z0-9._-]{0,63})@([1-9][0-9]{0,8})$")
REF_PATTERN = _REF.pattern


def parse_ref(text: Any, field: str = "policy") -> PolicyRef:
    """``NAME@VERSION`` as a `PolicyRef`; `InvalidInput` naming ``field`` otherwise."""
    match = _REF.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(field, f"{text!r} is not NAME@VERSION (e.g. playbook@2: a policy "
                                  "name in lowercase letters, digits, '.', '_' or '-', and a "
                                  "version from 1)")
    return PolicyRef(match[1], int(match[2]))


_PUBLISHED_TOPIC = get_topic(PublishedPolicy.Published)


class PolicyBook:
    """Looks policies up by name and version (cached: a published version never changes)."""

    def __init__(self, application: Any) -> None:
        self._app = application
        builtin = default_policy()
        self._cache: dict[tuple[str, int], CadencePolicy] = {
            (builtin.name, builtin.version): builtin}
        self._listed: set[PolicyRef] = {PolicyRef(builtin.name, builtin.version)}
        self._listed_up_to = 0  # the log position `published` has read up to
        self._listing = threading.Lock()

    def get(self, name: str, version: int) -> CadencePolicy:
        """The policy ``name`` at ``version``; `InvalidInput` when none was published."""
        key = (name, version)
        policy = self._cache.get(key)
        if policy is None:
            try:
                published = self._app.repository.get(PublishedPolicy.id_for(name, version))
            except AggregateNotFoundError:
                raise InvalidInput("policy", f"no policy {name!r} version {version} "
                                             "has been published") from None
            policy = parse_policy(published.toml, source=f"{name} v{version}")
            self._cache[key] = policy
        return policy

    def latest(self, name: str) -> CadencePolicy | None:
        """The highest published version of ``name`` (None when none is)."""
        found = None
        version = 1
        while True:
            try:
                found = self.get(name, version)
            except InvalidInput:
                return found
            version += 1

    def published(self) -> list[PolicyRef]:
        """Every published version (the built-in one too), by name then version.  Read
        from the event log's publications, only the part of the log after the last read
        (a published version never changes, so what was read once stays true)."""
        recorder: Any = self._app.recorder
        with self._listing:
            # Up to the log's end as of now, so the next call reads only what came after
            # (ids are in commit order on both stores: none below it can appear later).
            top = recorder.max_notification_id() or 0
            start = self._listed_up_to + 1
            while start <= top:
                page = recorder.select_notifications(start, 500, stop=top,
                                                     topics=[_PUBLISHED_TOPIC])
                for notification in page:
                    event = self._app.mapper.to_domain_event(notification)
                    self._listed.add(PolicyRef(event.name, event.version))
                if len(page) < 500:
                    break
                start = page[-1].id + 1
            self._listed_up_to = max(self._listed_up_to, top)
            return sorted(self._listed)

    def starting(self, workspace: str) -> PolicyRef | None:
        """The version ``workspace`` chose for its new candidacies (None: none chosen)."""
        try:
            chosen = self._app.repository.get(StartingPolicy.id_for(workspace))
        except AggregateNotFoundError:
            return None
        return PolicyRef(chosen.policy["name"], int(chosen.policy["version"]))

    def choose_starting(self, workspace: str, ref: PolicyRef, actor: str, at: Any) -> bool:
        """New candidacies of ``workspace`` start on ``ref`` (published, else `InvalidInput`)
        from now on; those already open keep theirs.  False when it already was."""
        self.get(ref.name, ref.version)
        uid = StartingPolicy.id_for(workspace)
        try:
            chosen = self._app.repository.get(uid)
        except AggregateNotFoundError:
            self._app.save(StartingPolicy._create(
                StartingPolicy.Chosen, id=uid, timestamp=at, workspace=workspace,
                policy=ref.as_dict(), actor=actor))
            return True
        if chosen.policy == ref.as_dict():
            return False
        chosen.trigger_event(StartingPolicy.Changed, timestamp=at, policy=ref.as_dict(),
                             previous=chosen.policy, actor=actor)
        self._app.save(chosen)
        return True

    def of(self, candidacy: Any) -> CadencePolicy:
        """The policy version a candidacy runs under."""
        return self.get(candidacy.policy["name"], candidacy.policy["version"])

    def publish(self, policy: CadencePolicy) -> bool:
        """Publish ``policy``; True if new, False if that exact version was already there.
        A different policy under a published name and version is refused."""
        toml = policy_to_toml(policy)
        try:
            existing = self.get(policy.name, policy.version)
        except InvalidInput:
            self._app.save(PublishedPolicy._create(
                PublishedPolicy.Published, id=PublishedPolicy.id_for(policy.name, policy.version),
                name=policy.name, version=policy.version, toml=toml))
            self._cache[(policy.name, policy.version)] = policy
            return True
        if policy_to_toml(existing) != toml:
            raise InvalidInput("version", f"{policy.name} version {policy.version} is already "
                                          "published with other rules: publish a new version")
        return False
