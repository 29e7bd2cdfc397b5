"""What routes depend on, as typed aliases: the application, the caller, and a command runner
that applies `If-Match`, `Idempotency-Key` and the caller's role to every command.

Dependencies are `async` when they do no I/O: FastAPI would run a plain `def` one in its
thread pool, a hop per dependency per request."""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Depends, Header, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, TokenVerifier
from api.problems import ProblemError
from engine.application import Candidacies, Outcome
from engine.errors import VersionConflict
from engine.values import Actor, NewCandidacy

# A command that lost a race without If-Match is simply applied again to the new state.
CONFLICT_RETRIES = 5
_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,18})"?\s*$')

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`; "
                    "tokens come from `closer token create --workspace W --role R`")


async def known_query_only(request: Request) -> None:
    """Refuse query parameters the operation does not take: a typo (`?stgae=`) would
    otherwise silently return everything; on the JSON API's routes (those in
    ``app.state.single_valued``), a parameter given twice too (`refuse_repeated`; once a router
    dependency of its own, an `async` one: as a plain `def` FastAPI ran it in its thread
    pool, 1.12x the server CPU a command, fastpaths_bench api query-hop).
    One dependency for both: each dependency FastAPI solves costs a command's CPU."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return
    known = _QUERY_NAMES.get(id(route))
    if known is None:
        known = _QUERY_NAMES[id(route)] = frozenset(_query_names(route.dependant))
    unknown = [name for name in request.query_params if name not in known]
    if unknown:
        raise ProblemError("invalid-input", f"{unknown[0]}: unknown query parameter",
                           field=unknown[0], reason="unknown query parameter",
                           errors=[{"field": name, "reason": "unknown query parameter",
                                    "location": "query"} for name in unknown])
    if id(route) in getattr(request.app.state, "single_valued", ()):
        refuse_repeated(request)


_QUERY_NAMES: dict[int, frozenset[str]] = {}  # per route (routes live as long as the app)
_LIST_NAMES: dict[int, frozenset[str]] = {}


def list_query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters ``route`` (or a dependency of it) declares as a list, the only
    ones that may be given more than once (e.g. the policies page's ``show=``)."""
    names = _LIST_NAMES.get(id(route))
    if names is None:
        names = _LIST_NAMES[id(route)] = frozenset(_list_names(route.dependant))
    return names


def _list_names(dependant: Dependant) -> Iterator[str]:
    yield from (param.alias for param in dependant.query_params
                if _takes_many(param.field_info.annotation))
    for sub in dependant.dependencies:
        yield from _list_names(sub)


def _takes_many(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes_many(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return any(_takes_many(arg) for arg in get_args(annotation))
    return origin in (list, tuple, set, frozenset, Sequence)


def _query_names(dependant: Dependant) -> Iterator[str]:
    yield from (param.alias for param in dependant.query_params)
    for sub in dependant.dependencies:
        yield from _query_names(sub)


async def get_candidacies(request: Request) -> Candidacies:
    """The process's one application object."""
    return request.app.state.candidacies  # type: ignore[no-any-return]


Store = Annotated[Candidacies, Depends(get_candidacies)]


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller of a valid bearer token, else 401."""
    verifier: TokenVerifier = request.app.state.tokens
    principal = None
    if credentials is not None:
        # A recently verified token needs no I/O; otherwise read it off the event loop.
        principal = verifier.cached(credentials.credentials) or await run_in_threadpool(
            verifier.verify, credentials.credentials)
    if principal is None:
        raise ProblemError("unauthorized", "send a valid token as `Authorization: Bearer <token>`",
                           headers={"WWW-Authenticate": 'Bearer realm="closer"'})
    request.state.workspace = principal.workspace  # for the request log
    return principal


Reader = Annotated[Principal, Depends(current_principal)]


async def require_writer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, if their role may issue commands, else 403 (401 without a valid token)."""
    principal = await current_principal(request, credentials)
    if not principal.role.can_write:
        raise ProblemError("forbidden", f"the {principal.role.value} role only reads")
    return principal


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


Writer = Annotated[Principal, Depends(require_writer)]


IfMatchHeader = Annotated[str | None, Header(
    alias="If-Match", max_length=64,
    description='The version the command expects the candidacy to be at: the `ETag` of a '
                'response, e.g. `"3"` (a stale one answers 412).',
    pattern=r'^\s*(?:W/)?"?\d{1,18}"?\s*$|^\*$')]
IdempotencyKeyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
    description="Any unique string (e.g. a UUID). Repeating a request with the same key and "
                "body answers the first response and records nothing.")]


def expected_version(if_match: str | None) -> int | None:
    """`If-Match: <version>` as an expected version (`*` and absence expect none)."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = _IF_MATCH.match(if_match)
    if match is None:  # pragma: no cover - the header's pattern refuses it first
        raise ProblemError("bad-request", "If-Match takes one version, e.g. \"3\"")
    return int(match.group(1))


class InFlight:
    """Idempotency keys whose first request is still running in this process.
    (Across processes the store's unique key decides: the loser answers the winner's response.)"""

    def __init__(self) -> None:
        self._keys: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, workspace: str, key: str | None) -> Iterator[None]:
        if key is None:
            yield
            return
        entry = (workspace, key)
        with self._lock:
            if entry in self._keys:
                raise ProblemError("idempotency-key-in-flight",
                                   "the first request with this Idempotency-Key is still "
                                   "running; retry once it has answered",
                                   headers={"Retry-After": "1"})
            self._keys.add(entry)
        try:
            yield
        finally:
            with self._lock:
                self._keys.discard(entry)


class CommandTurns:
    """At most ``size`` commands at once (`Settings.concurrent_commands`), each in a worker
    thread; the others await their turn on the event loop, in order.  One anyio limiter
    a loop: it is bound to the loop it first waits in (the server has one loop; a test
    client may start one a request)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                  CapacityLimiter] = weakref.WeakKeyDictionary()

    def limiter(self) -> CapacityLimiter:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = CapacityLimiter(self.size)
        return limiter


@dataclass(frozen=True, slots=True)
class CommandRunner:
    """Runs one engine command for the caller with the request's version and key."""

    candidacies: Candidacies
    principal: Principal
    expected_version: int | None
    idempotency_key: str | None
    inflight: InFlight
    response: Response
    turns: CommandTurns

    def actor(self, on_behalf_of: str | None) -> Actor:
        return Actor(user=self.principal.user, workspace=self.principal.workspace,
                     on_behalf_of=on_behalf_of)

    async def record(self, details: NewCandidacy, on_behalf_of: str | None,
                     policy: dict[str, Any] | None = None) -> Outcome:
        """Open a candidacy (there is no version to expect yet) on ``policy`` (default: the
        application's), in a worker thread when its turn comes."""
        return await anyio.to_thread.run_sync(
            partial(self._record, details, on_behalf_of, policy), limiter=self.turns.limiter())

    async def run(self, command: Callable[..., Outcome], candidacy_id: str, *args: Any,
                  on_behalf_of: str | None = None, **kwargs: Any) -> Outcome:
        """``command(actor, candidacy_id, *args, **kwargs)`` with If-Match and the key, in
        a worker thread when its turn comes (`turns`): the store's reads and commits never
        hold the event loop.  (The routes are `async def` that await this: a plain `def`
        route costs a second thread hop, as FastAPI validates its response in the pool
        too.)"""
        return await anyio.to_thread.run_sync(
            partial(self._run, command, candidacy_id, *args, on_behalf_of=on_behalf_of,
                    **kwargs), limiter=self.turns.limiter())

    def _record(self, details: NewCandidacy, on_behalf_of: str | None,
                policy: dict[str, Any] | None = None) -> Outcome:
        with self.inflight.hold(self.principal.workspace, self.idempotency_key):
            outcome = self.candidacies.record_interview(
                self.actor(on_behalf_of), details, policy=policy,
                idempotency_key=self.idempotency_key)
        return self._answered(outcome)

    def _run(self, command: Callable[..., Outcome], candidacy_id: str, *args: Any,
             on_behalf_of: str | None = None, **kwargs: Any) -> Outcome:
        actor = self.actor(on_behalf_of)
        stored = refuse_if_chain_broken(self.candidacies, candidacy_id, self.principal.workspace)
        if stored is not None:
            self.candidacies.drop_stale_copy(candidacy_id, stored)
        with self.inflight.hold(self.principal.workspace, self.idempotency_key):
            for _ in range(CONFLICT_RETRIES):
                try:
                    outcome = command(actor, candidacy_id, *args,
                                      expected_version=self.expected_version,
                                      idempotency_key=self.idempotency_key, **kwargs)
                except VersionConflict:
                    if self.expected_version is not None:
                        raise
                    continue
                return self._answered(outcome)
        raise ProblemError("concurrent-modification",
                           "the candidacy changed under every attempt; retry")

    def _answered(self, outcome: Outcome) -> Outcome:
        self.response.headers["ETag"] = f'"{outcome.version}"'
        if outcome.replayed:
            self.response.headers["Idempotent-Replayed"] = "true"
        return outcome


def refuse_if_chain_broken(candidacies: Candidacies, candidacy_id: str,
                           workspace: str) -> int | None:
    """409 ``chain-broken`` naming the first break when the candidacy's stored history is
    not what Closer wrote (docs/audit.md, "Commands on a broken chain"): a command is
    judged against the stage its events make, so it is not recorded on top of altered
    ones.  Another workspace's candidacy is left to the command (which answers 404).
    Else the highest version the read found stored (None: not known)."""
    from api.audit_service import chain_check

    broken, stored = chain_check(candidacies, candidacy_id)
    if broken is None:
        return stored
    row = candidacies.row(candidacy_id)
    if row is None or row.workspace != workspace:
        return None
    raise ProblemError(
        "chain-broken", f"not applied: this candidacy's stored history is not what was "
        f"recorded ({broken.line()}); an admin runs `closer audit verify` and restores it",
        candidacy_id=candidacy_id, version=broken.version,
        notification_id=broken.notification_id, finding=broken.kind)


def refuse_repeated(request: Request, many: frozenset[str] = frozenset()) -> None:
    """Refuse (422) a query parameter given more than once: every parameter of the JSON API
    takes one value, and FastAPI would silently keep the last of them (a name in ``many``,
    a parameter a dashboard page takes as a list, may be given more than once)."""
    params = request.query_params
    repeated = sorted({name for name in params
                       if name not in many and len(params.getlist(name)) > 1})
    if repeated:
        raise RequestValidationError([
            {"type": "repeated", "loc": ("query", name), "input": params.getlist(name),
             "msg": f"query parameter {name!r} is given {len(params.getlist(name))} times; "
                    f"it takes one value"} for name in repeated])


async def command_runner(request: Request, response: Response, credentials: Credentials,
                         if_match: IfMatchHeader = None,
                         idempotency_key: IdempotencyKeyHeader = None) -> CommandRunner:
    # One dependency with its headers and the bearer declared here, the writer's check
    # made here (`require_writer`'s, not another dependency of it): FastAPI's dependency
    # solving is a measurable share of a command's CPU.
    principal = await require_writer(request, credentials)
    state = request.app.state
    return CommandRunner(state.candidacies, principal, expected_version(if_match),
                         idempotency_key, state.inflight, response, state.command_turns)


Command = Annotated[CommandRunner, Depends(command_runner)]
