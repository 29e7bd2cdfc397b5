"""Errors as RFC 9457 problem details (`application/problem+json`), one stable `type` each.

Every failure a client can cause maps to a 4xx problem here; engine errors are
translated by type, never by message.  Anything else is a 500 problem that
reveals nothing (and is logged with its traceback).
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import (
    CandidacyErased,
    CandidacyNotFound,
    CloserError,
    CorruptHistory,
    IdempotencyKeyReused,
    IllegalCommand,
    InvalidInput,
    PlaybookRule,
    VersionConflict,
)

log = structlog.get_logger("closer.api")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:closer:problem:"
"""Problem types are URNs: stable, and they promise no web page (docs/api.md lists them)."""

TYPES: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request is malformed"),
    "invalid-input": (422, "The request's data is invalid"),
    "idempotency-key-reused": (422, "The idempotency key was used for another request"),
    "unauthorized": (401, "A valid bearer token is required"),
    "forbidden": (403, "Your role may not do this"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "not-acceptable": (406, "Not acceptable"),
    "illegal-command": (409, "The playbook does not allow this now"),
    "playbook-rule": (409, "A rule of the playbook refuses this now"),
    "candidacy-erased": (409, "The candidacy's personal data was erased"),
    "message-state": (409, "The message cannot be approved, retried, rerouted or edited now"),
    "idempotency-key-in-flight": (409, "A request with this idempotency key is in progress"),
    "concurrent-modification": (409, "The candidacy kept changing; retry"),
    "chain-broken": (409, "The candidacy's stored history does not verify"),
    "version-conflict": (412, "The candidacy (or message) is not at the version given "
                                "in If-Match"),
    "content-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "internal": (500, "Internal error"),
    "corrupt-history": (500, "The candidacy's stored history cannot be read"),
    "store-unavailable": (503, "The event store is unavailable"),
    "worker-down": (503, "A background worker is down"),
}


class FieldProblem(BaseModel):
    """One invalid field and why."""

    field: str = Field(description="dotted path of the field, e.g. `candidate.email`")
    reason: str
    location: str = Field(default="body", description="body, query, header or path")


class Problem(BaseModel):
    """An RFC 9457 problem; extension members depend on its `type`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description=f"stable URI: {PROBLEM_BASE}<name>")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    field: str | None = Field(default=None, description="invalid-input: the first bad field")
    reason: str | None = Field(default=None, description="invalid-input: why it is bad")
    errors: list[FieldProblem] | None = Field(default=None,
                                              description="invalid-input: every bad field")
    stage: str | None = Field(default=None, description="illegal-command: the current stage")
    allowed: list[str] | None = Field(default=None,
                                      description="illegal-command: commands allowed now")
    command: str | None = None
    limit: int | None = Field(default=None, description="content-too-large: the most bytes "
                                                        "a body may have")
    why: str | None = Field(default=None, description="illegal-command: the guard that failed")
    rule: str | None = Field(default=None,
                             description="playbook-rule: the rule refusing it, e.g. "
                                         "`pest_line.max_nudges`")
    allowed_from: str | None = Field(default=None,
                                     description="playbook-rule: from when waiting satisfies "
                                                 "the rule (absent: waiting will not)")
    expected_version: int | None = None
    current_version: int | None = None
    candidacy_id: str | None = Field(default=None,
                                     description="corrupt-history: the quarantined "
                                     "candidacy; chain-broken: the candidacy")
    originator_id: str | None = Field(default=None, description="corrupt-history: the id of "
                                      "the record that cannot be read (a candidacy's, or "
                                      "e.g. a policy's)")
    version: int | None = Field(default=None,
                                description="corrupt-history: the version that cannot "
                                "be read; chain-broken: the first broken version")
    notification_id: int | None = Field(default=None, description="corrupt-history: its "
                                        "position in the event log, when known")
    finding: str | None = Field(default=None, description="chain-broken: what the first "
                                "break is (altered, removed, inserted, reordered)")


class ProblemError(Exception):
    """Raise to answer with a problem of ``kind`` (a key of `TYPES`)."""

    def __init__(self, kind: str, detail: str | None = None, *,
                 headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(detail or kind)
        self.kind = kind
        self.detail = detail
        self.headers = headers
        self.extensions = extensions


def problem_response(request: Request | None, kind: str, detail: str | None = None, *,
                     status: int | None = None, headers: dict[str, str] | None = None,
                     **extensions: Any) -> JSONResponse:
    """The problem+json response for ``kind``."""
    code, title = TYPES[kind]
    body: dict[str, Any] = {"type": PROBLEM_BASE + kind, "title": title,
                            "status": status or code}
    if detail:
        body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
    body.update({k: v for k, v in extensions.items() if v is not None})
    return JSONResponse(jsonable_encoder(body), status_code=status or code,
                        media_type=PROBLEM_JSON, headers=headers)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json for ``statuses``."""
    descriptions = {code: title for code, title in TYPES.values()}
    return {
        status: {"model": Problem, "description": descriptions.get(status, "Problem"),
                 "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for status in statuses
    }


def problem_openapi(status: int) -> dict[str, Any]:
    """The raw OpenAPI response object for a problem+json ``status`` (for documents edited
    after FastAPI built them)."""
    descriptions = {code: title for code, title in TYPES.values()}
    return {"description": descriptions.get(status, "Problem"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _field_problems(errors: Sequence[Mapping[str, Any]]) -> list[FieldProblem]:
    problems = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc and loc[0] in ("body", "query", "header", "path",
                                                   "cookie") else "body"
        if loc and loc[0] == location:
            loc = loc[1:]
        reason = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        problems.append(FieldProblem(field=".".join(loc) or location, reason=reason,
                                     location=location))
    return problems


def _invalid(request: Request, problems: list[FieldProblem]) -> JSONResponse:
    first = problems[0]
    detail = f"{first.field}: {first.reason}"
    if len(problems) > 1:
        detail += f" (and {len(problems) - 1} more problem(s))"
    return problem_response(request, "invalid-input", detail, field=first.field,
                            reason=first.reason,
                            errors=[p.model_dump() for p in problems])


async def _request_validation(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = list(error.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(request, "bad-request", "the body is not valid JSON")
    return _invalid(request, _field_problems(errors))


async def _pydantic_validation(request: Request, error: ValidationError) -> JSONResponse:
    return _invalid(request, _field_problems(list(error.errors())))


async def _invalid_input(request: Request, error: InvalidInput) -> JSONResponse:
    return _invalid(request, [FieldProblem(field=error.field, reason=error.reason)])


async def _key_reused(request: Request, error: IdempotencyKeyReused) -> JSONResponse:
    return problem_response(request, "idempotency-key-reused",
                            "this Idempotency-Key was already used with another request; "
                            "use a new key for a new request")


async def _illegal(request: Request, error: IllegalCommand) -> JSONResponse:
    return problem_response(request, "illegal-command", str(error), command=error.command,
                            stage=error.stage, allowed=error.allowed, why=error.why or None)


async def _playbook_rule(request: Request, error: PlaybookRule) -> JSONResponse:
    return problem_response(request, "playbook-rule", str(error), command=error.command,
                            stage=error.stage, rule=error.rule, reason=error.reason,
                            allowed_from=_utc_text(error.allowed_from))


def _utc_text(moment: datetime | None) -> str | None:
    """A moment as the rest of the API writes it (UTC, with ``Z``)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _erased(request: Request, error: CandidacyErased) -> JSONResponse:
    return problem_response(request, "candidacy-erased", str(error))


async def _not_found(request: Request, error: CandidacyNotFound) -> JSONResponse:
    return problem_response(request, "not-found", f"no candidacy {error.candidacy_id}")


async def _version_conflict(request: Request, error: VersionConflict) -> JSONResponse:
    return problem_response(request, "version-conflict", str(error),
                            expected_version=error.expected, current_version=error.actual)


async def _corrupt(request: Request, error: CorruptHistory) -> JSONResponse:
    # Named and logged for the operator; the decoder's own message stays in the log.
    log.error("corrupt history", path=request.url.path, candidacy_id=str(error.originator_id),
              version=error.version, notification_id=error.notification_id,
              error=error.reason)
    at = f" (notification {error.notification_id})" if error.notification_id else ""
    candidacy = error.topic.startswith(_CANDIDACY_TOPIC)
    what = (f"candidacy {error.originator_id}" if candidacy
            else f"a stored record this needs ({error.originator_id})")
    return problem_response(
        request, "corrupt-history",
        f"{what} is quarantined: its stored event at version {error.version}{at} cannot "
        "be read; `closer doctor` lists it",
        candidacy_id=str(error.originator_id) if candidacy else None,
        originator_id=str(error.originator_id), version=error.version,
        notification_id=error.notification_id)


_CANDIDACY_TOPIC = "engine.candidacy:"


async def _closer_error(request: Request, error: CloserError) -> JSONResponse:
    # An engine refusal without a more specific mapping: the client's data, by construction.
    return problem_response(request, "invalid-input", str(error))


async def _problem(request: Request, error: ProblemError) -> JSONResponse:
    return problem_response(request, error.kind, error.detail, headers=error.headers,
                            **error.extensions)


_HTTP_KINDS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
               405: "method-not-allowed", 406: "not-acceptable", 413: "content-too-large",
               415: "unsupported-media-type"}


async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
    kind = _HTTP_KINDS.get(error.status_code, "bad-request")
    # Typed str, but FastAPI's HTTPException (a subclass, handled here too) takes any detail.
    given: object = error.detail
    detail = given if isinstance(given, str) else None
    return problem_response(request, kind, detail, status=error.status_code,
                            headers=getattr(error, "headers", None))


async def _store_down(request: Request, error: Exception) -> JSONResponse:
    log.error("store unavailable", error=type(error).__name__)
    return problem_response(request, "store-unavailable", "try again shortly",
                            headers={"Retry-After": "5"})


async def _internal(request: Request, error: Exception) -> JSONResponse:
    # The traceback as plain text: renderers that expand locals would dump request data.
    log.error("unhandled error", path=request.url.path, error=type(error).__name__,
              traceback="".join(traceback.format_exception(error)))
    return problem_response(request, "internal")


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem+json."""
    handlers: list[tuple[type[Exception], Any]] = [
        (RequestValidationError, _request_validation),
        (ValidationError, _pydantic_validation),
        (InvalidInput, _invalid_input),
        (IdempotencyKeyReused, _key_reused),
        (IllegalCommand, _illegal),
        (PlaybookRule, _playbook_rule),
        (CandidacyErased, _erased),
        (CandidacyNotFound, _not_found),
        (VersionConflict, _version_conflict),
        (CorruptHistory, _corrupt),
        (CloserError, _closer_error),
        (ProblemError, _problem),
        (StarletteHTTPException, _http),
        (OperationalError, _store_down),
        (InterfaceError, _store_down),
        (Exception, _internal),
    ]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, handler)
