"""Signing in to the dashboard: an API token exchanged for a signed session cookie, and
CSRF protection for every form.

The cookie (`closer_session`, HttpOnly, SameSite=Lax, Secure over HTTPS) holds a small
JSON payload signed with HMAC-SHA256 under ``CLOSER_SESSION_SECRET``: the SHA-256 of the
token signed in with (never the token itself, so revoking the token ends the session at
the `TokenVerifier`'s next look), the session's CSRF token and when it expires.  A
browser that is not signed in still gets an anonymous session (no token, a CSRF token) so
that the sign-in form itself is protected.

Every POST of the dashboard is checked twice: the form's ``csrf`` field must equal the
session's CSRF token (compared in constant time), and the request must come from this
site (its ``Origin``, or failing that its ``Referer``, names this very scheme, host and
port; neither present is refused too).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from fastapi import Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, TokenVerifier

COOKIE = "closer_session"
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Session:
    """What the session cookie says: whose token (its hash; None before sign-in), the
    CSRF token of this browser's forms, and when it ends (a POSIX time)."""

    token_hash: str | None
    csrf: str
    expires: float


class SessionSigner:
    """Signs and checks session cookies with HMAC-SHA256 (stdlib `hmac`), under a key
    derived from the settings' secret, so the secret itself never signs anything else."""

    def __init__(self, secret: str, hours: float) -> None:
        self._key = hashlib.sha256(b"closer dashboard session\x00" + secret.encode()).digest()
        self.seconds = hours * 3600

    def new(self, now: float, token_hash: str | None = None) -> Session:
        """A fresh session (a new CSRF token) from ``now``."""
        return Session(token_hash, secrets.token_urlsafe(32), now + self.seconds)

    def dumps(self, session: Session) -> str:
        payload = _b64(orjson.dumps({"t": session.token_hash, "c": session.csrf,
                                     "e": round(session.expires)}))
        return f"{payload}.{self._sign(payload)}"

    def loads(self, value: str | None, now: float) -> Session | None:
        """The session ``value`` carries, or None when it is absent, forged or expired."""
        if not value or len(value) > 1024 or "." not in value:
            return None
        payload, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(data["t"], str(data["c"]), float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > now else None

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person looking at a page: their token's principal, and their session."""

    principal: Principal
    session: Session

    @property
    def can_act(self) -> bool:
        """Whether the page offers forms (a viewer sees, and cannot act)."""
        return self.principal.role.can_write

    @property
    def workspace(self) -> str:
        return self.principal.workspace


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page (then back)."""


class PageError(Exception):
    """A page's refusal, answered as an HTML page with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now(request: Request) -> float:
    return float(request.app.state.candidacies.clock.now().timestamp())


def current_session(request: Request) -> Session:
    """This browser's session: the cookie's, or a fresh anonymous one (set on the response
    by `remember`)."""
    cached = getattr(request.state, "dashboard_session", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    signer: SessionSigner = request.app.state.session_signer
    session = signer.loads(request.cookies.get(COOKIE), _now(request))
    if session is None:
        session = signer.new(_now(request))
        request.state.dashboard_session_new = True
    request.state.dashboard_session = session
    return session


def remember(request: Request, response: Response, session: Session | None = None) -> None:
    """Set the session cookie on ``response`` when it is new (or ``session`` replaces it)."""
    if session is not None:
        request.state.dashboard_session = session
        request.state.dashboard_session_new = True
    if not getattr(request.state, "dashboard_session_new", False):
        return
    signer: SessionSigner = request.app.state.session_signer
    session = request.state.dashboard_session
    response.set_cookie(COOKIE, signer.dumps(session), max_age=int(signer.seconds),
                        path="/dashboard", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="lax")


async def signed_in(request: Request) -> Viewer:
    """The signed-in viewer of this request, else `SignInRequired`."""
    session = current_session(request)
    principal = None
    if session.token_hash is not None:
        verifier: TokenVerifier = request.app.state.tokens
        # A token verified within the cache's ttl needs no I/O, so no thread: the thread hop
        # was ~0.3 ms of a ~1 ms signed-in request (docs/performance.md, "Dashboard (issue
        # 16)"); a token not in the cache is read off the event loop as before.
        principal = verifier.cached_hash(session.token_hash) or await run_in_threadpool(
            verifier.verify_hash, session.token_hash)
    if principal is None:
        raise SignInRequired
    request.state.workspace = principal.workspace  # for the request log
    return Viewer(principal, session)


SignedIn = Annotated[Viewer, Depends(signed_in)]


# -- forms ------------------------------------------------------------------------------


class FormData(dict[str, str]):
    """A posted form's fields (the last value of a repeated name; `all` for every one)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def text(self, name: str) -> str | None:
        """The field stripped, or None when absent or blank."""
        value = self.get(name, "").strip()
        return value or None


def same_origin(request: Request) -> bool:
    """Whether the request says it comes from a page of this very site."""
    own = f"{request.url.scheme}://{request.url.netloc}".lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.lower() == own
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == own
    return False


async def _read_form(request: Request) -> FormData:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM_TYPE:
        raise PageError(415, "This page takes a form (application/x-www-form-urlencoded).")
    body = await request.body()  # size-limited at the door (api.limits)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "The form could not be read.") from None
    return FormData(pairs)


def _check_csrf(request: Request, form: FormData, session: Session) -> None:
    if not same_origin(request):
        raise PageError(403, "Refused: this form was not sent from Closer's own pages "
                             "(Origin or Referer missing or from another site).")
    token = form.get("csrf", "")
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise PageError(403, "Refused: the form's security token is missing or out of date. "
                             "Reload the page and try again.")


async def posted_form(request: Request) -> FormData:
    """The form of a POST from a page of this site carrying this session's CSRF token
    (the sign-in form: a session need not be signed in)."""
    form = await _read_form(request)
    _check_csrf(request, form, current_session(request))
    return form


async def acting_form(request: Request, viewer: SignedIn) -> tuple[Viewer, FormData]:
    """A signed-in viewer's form, checked for CSRF, if their role may act (else 403:
    the viewer role sees and cannot act)."""
    form = await _read_form(request)
    _check_csrf(request, form, viewer.session)
    if not viewer.can_act:
        raise PageError(403, f"The {viewer.principal.role.value} role only reads: "
                             "nothing was changed.")
    return viewer, form


PostedForm = Annotated[FormData, Depends(posted_form)]
Acting = Annotated[tuple[Viewer, FormData], Depends(acting_form)]


def signed_in_session(request: Request, token_hash: str) -> Session:
    """A new session for ``token_hash`` (a new CSRF token too: no fixation)."""
    signer: SessionSigner = request.app.state.session_signer
    return replace(signer.new(_now(request)), token_hash=token_hash)


def safe_next(value: Any) -> str:
    """Where to go after signing in: a path of the dashboard only (never another site)."""
    if isinstance(value, str) and value.startswith("/dashboard") and "//" not in value \
            and "\\" not in value:
        return value
    return "/dashboard/today"
