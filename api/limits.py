"""Request bodies refused at the door, before any route reads or parses them.

`BodyLimits` is a pure ASGI middleware: a body larger than the limit is a 413 (from its
`Content-Length` alone, or counted while it streams in when it has none), a body that is not
JSON a 415, JSON nested deeper than the limit a 422; all problem+json. Starlette's own
`RequestBodyLimitMiddleware` answers 413 in plain text and only once the route reads the
body; this one answers before the route runs, and checks the media type and depth too.

The one exception to "JSON only": the dashboard's HTML forms (`api.dashboard`), under
``form_prefix``, may post ``application/x-www-form-urlencoded`` bodies, size-limited alike.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""The methods whose bodies are checked (the OpenAPI document lists 413 and 415 on them)."""
_JSON = re.compile(rb"^\s*application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)
_FORM = re.compile(rb"^\s*application/x-www-form-urlencoded\s*(?:;.*)?$", re.IGNORECASE)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)  # an unclosed string ends the body
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_STEP = bytes.maketrans(b"[{]}", bytes([1, 1, 255, 255]))  # as signed bytes: +1, +1, -1, -1


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether the JSON text ``body`` opens arrays and objects more than ``limit`` deep at
    some point (brackets inside strings do not count; unclosed ones do).

    All C loops: 1.4 µs for a command's body, at most ~6 ms for 64 KiB of nothing but
    brackets (measured here); `json.loads` itself would overflow the stack at ~1,000."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the common case: too few brackets to be too deep
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", body))
    depths = accumulate(array("b", brackets.translate(_STEP)))
    return next(filter(limit.__lt__, depths), None) is not None


class BodyLimits:
    """Refuse request bodies over ``max_bytes``, not declared JSON, or nested deeper than
    ``max_depth``, on POST, PUT and PATCH (every route of the API that takes a body takes
    JSON).  Other requests pass untouched; a body within the limit is read once here and
    handed to the route as one message.  Cost: about 5 µs a POST with a command's body
    (measured here with a bare ASGI app; a command itself takes a millisecond or more)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int,
                 form_prefix: str | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.form_prefix = form_prefix  # paths whose forms may post url-encoded bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        content_type: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
        declared = _length(length)
        if declared is not None and declared < 0:
            await self._refuse(scope, receive, send, "bad-request",
                               "Content-Length is not a number of bytes")
            return
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        if declared == 0:
            await self.app(scope, receive, send)  # no body: the route decides if it needs one
            return
        form = (self.form_prefix is not None and content_type is not None
                and scope["path"].startswith(self.form_prefix) and _FORM.match(content_type))
        if not form and content_type is not None and content_type != b"application/json" \
                and not _JSON.match(content_type):
            await self._not_json(scope, receive, send)
            return
        body = await self._read(receive)
        if body is None:
            await self._too_large(scope, receive, send)
            return
        if form:
            await self.app(scope, _replay(body, receive), send)  # a form: no JSON to nest
            return
        if body and content_type is None:
            await self._not_json(scope, receive, send)
            return
        if nested_deeper_than(body, self.max_depth):
            reason = f"JSON nested deeper than {self.max_depth} levels"
            await self._refuse(scope, receive, send, "invalid-input", f"body: {reason}",
                               field="body", reason=reason,
                               errors=[{"field": "body", "reason": reason, "location": "body"}])
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None once it is past the limit (a body without
        Content-Length is counted as it arrives, and never read further)."""
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body: bytes = message.get("body", b"")  # the usual case: all in one message
            return body if len(body) <= self.max_bytes else None
        chunks: list[bytes] = []
        size = 0
        while True:
            if message["type"] != "http.request":
                break  # the client went away; the route will see it disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
            message = await receive()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _not_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._refuse(scope, receive, send, "unsupported-media-type",
                           "send the body as JSON, with Content-Type: application/json",
                           headers={"Accept-Post": "application/json"})

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Connection: close, so the server drops the rest instead of reading it all.
        await self._refuse(scope, receive, send, "content-too-large",
                           f"a request body may have at most {self.max_bytes} bytes",
                           headers={"Connection": "close"}, limit=self.max_bytes)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, kind: str, detail: str, *,
                      headers: dict[str, str] | None = None, **extensions: Any) -> None:
        response = problem_response(None, kind, detail, headers=headers,
                                    instance=scope.get("path"), **extensions)
        await response(scope, receive, send)


def _length(value: bytes | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isdigit() else -1


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the route ``body`` first, then whatever the client sends."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
