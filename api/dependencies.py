"""What routes depend on, as typed aliases: the application, the caller, and a command runner
that applies `If-Match`, `Idempotency-Key` and the caller's role to every command.

Dependencies are `async` when they do no I/O: FastAPI would run a plain `def` one in its
thread pool, a hop per dependency per request."""

from __future__ import annotations

import asyncio
import contextvars
import queue
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, TokenVerifier
from api.problems import ProblemError
from engine.application import Candidacies, Outcome
from engine.errors import VersionConflict
from engine.store import CloserSQLiteRecorder
from engine.values import Actor, NewCandidacy

# A command that lost a race without If-Match is simply applied again to the new state.
CONFLICT_RETRIES = 5
_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,18})"?\s*$')

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`; "
                    "tokens come from `closer token create --workspace W --role R`")


async def known_query_only(request: Request) -> None:
    """Refuse query parameters the operation does not take: a typo (`?stgae=`) would
    otherwise silently return everything."""
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


_QUERY_NAMES: dict[int, frozenset[str]] = {}  # per route (routes live as long as the app)


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


@dataclass(frozen=True, slots=True)
class CommandRunner:
    """Runs one engine command for the caller with the request's version and key."""

    candidacies: Candidacies
    principal: Principal
    expected_version: int | None
    idempotency_key: str | None
    inflight: InFlight
    response: Response
    inline: bool = False  # run on the event loop (see `commands_inline`)

    def actor(self, on_behalf_of: str | None) -> Actor:
        return Actor(user=self.principal.user, workspace=self.principal.workspace,
                     on_behalf_of=on_behalf_of)

    async def record(self, details: NewCandidacy, on_behalf_of: str | None,
                     policy: dict[str, Any] | None = None) -> Outcome:
        """Open a candidacy (there is no version to expect yet) on ``policy`` (default: the
        application's), in a command thread (or on the event loop, see `commands_inline`)."""
        return await self._call(self._record, details, on_behalf_of, policy)

    async def run(self, command: Callable[..., Outcome], candidacy_id: str, *args: Any,
                  on_behalf_of: str | None = None, **kwargs: Any) -> Outcome:
        """``command(actor, candidacy_id, *args, **kwargs)`` with If-Match and the key, in
        a command thread (or on the event loop, see `commands_inline`; on PostgreSQL a
        command without a key is read, decided and written from the loop too).  (The routes are
        `async def` that await this: a plain `def` route costs a second thread hop, as
        FastAPI validates its response in the pool too.)"""
        if self.idempotency_key is None:
            # Decided on the (kept or awaited) copy and written without leaving the event
            # loop, when the store can (PostgreSQL, see `Candidacies.execute_async`); else
            # as below.
            outcome = await self.candidacies.execute_async(
                command, self.actor(on_behalf_of), candidacy_id, *args,
                expected_version=self.expected_version, **kwargs)
            if outcome is not None:
                return self._answered(outcome)
        return await self._call(self._run, command, candidacy_id, *args,
                                on_behalf_of=on_behalf_of, **kwargs)

    async def _call(self, function: Callable[..., Outcome], /, *args: Any,
                    **kwargs: Any) -> Outcome:
        # Inline only while no thread of this process writes (a tick's page, say): the
        # command would wait for it with the whole event loop.
        recorder: Any = self.candidacies.recorder
        if self.inline and not recorder.writer_in_use():
            return function(*args, **kwargs)
        return await _in_worker(function, *args, **kwargs)

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


class CommandThreads:
    """Threads that run commands off the event loop: a queue, up to ``max_threads``
    threads started as requests need them, and the answer handed back to the awaiting
    task with one `call_soon_threadsafe`.

    asyncio's executor does the same through a `concurrent.futures.Future` (a Condition
    per call, notified from the thread) chained to an asyncio one: measurably more CPU
    per command on both sides of the hop.  Like it (and anyio's pool), a command the
    client stopped waiting for still runs to its end."""

    def __init__(self, max_threads: int, name: str) -> None:
        self._max_threads = max_threads
        self._name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = 0
        # Submitted, not yet answered: only a hint for starting threads (event loops of
        # other threads, as in tests, may race on it; the first call starts one anyway).
        self._running = 0
        self._lock = threading.Lock()

    async def run(self, function: Callable[..., Outcome], /, *args: Any, **kwargs: Any) -> Outcome:
        """``function(*args, **kwargs)`` in a command thread, with the caller's context vars."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        context = contextvars.copy_context()
        self._running += 1
        if self._running > self._threads and self._threads < self._max_threads:
            self._start_thread()
        self._jobs.put((loop, future, context, function, args, kwargs))
        try:
            return await future  # type: ignore[no-any-return]
        finally:
            self._running -= 1

    def _start_thread(self) -> None:
        with self._lock:
            if self._threads >= self._max_threads:
                return
            self._threads += 1
            number = self._threads
        threading.Thread(target=self._work, name=f"{self._name}_{number}", daemon=True).start()

    def _work(self) -> None:
        while True:
            loop, future, context, function, args, kwargs = self._jobs.get()
            try:
                result = context.run(function, *args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting task
                answer = (future, None, error)
            else:
                answer = (future, result, None)
            with suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_settle, *answer)
            del loop, future, context, function, args, kwargs, answer


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


_COMMAND_THREADS = CommandThreads(max_threads=40, name="closer-command")
_in_worker = _COMMAND_THREADS.run


def commands_inline(candidacies: Candidacies, workers: int) -> bool:
    """Whether commands run on the event loop rather than in a command thread: on a SQLite
    file served by one worker process.

    A SQLite command is local work (a read, one short write transaction) of well under a
    millisecond, and the thread hop cost more than the command itself: the event loop and
    the command thread hand the GIL to each other at every sqlite3 call (each releases
    it), measured in process on a busy 2-core machine as 1.9-2.8 ms of CPU per command
    through a thread against 1.4-1.8 ms inline.  Writes of one process are serialised
    anyway.  On PostgreSQL a command waits on network round trips, which a thread
    overlaps with other requests; with several workers on SQLite, a writer may wait for
    another process's lock."""
    return workers == 1 and isinstance(candidacies.recorder, CloserSQLiteRecorder)


async def command_runner(request: Request, response: Response, principal: Writer,
                         if_match: IfMatchHeader = None,
                         idempotency_key: IdempotencyKeyHeader = None) -> CommandRunner:
    # One dependency with its headers declared here, not one per header: FastAPI's
    # dependency solving is a measurable share of a command's CPU.
    state = request.app.state
    return CommandRunner(state.candidacies, principal, expected_version(if_match),
                         idempotency_key, state.inflight, response, state.commands_inline)


Command = Annotated[CommandRunner, Depends(command_runner)]
