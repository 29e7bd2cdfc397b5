"""structlog set-up: readable lines in a terminal, JSON lines in production."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

# Whether configured loggers are cached on first use (cheaper per line).  A cached
# logger keeps its configuration for good, so the test suite turns this off: commands
# run in-process there must not pin the configuration other tests capture logs with.
CACHE_LOGGERS = True


_CONTACTS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\+\d[\d ()]{6,}\d")


_USERS = frozenset({"actor", "on_behalf_of", "user", "by"})


def redact_contacts(_logger: Any, _method: str,
                    event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Email addresses and international phone numbers in a line's text (a channel's
    error quoting a recipient, a traceback) as ``[redacted]``: Closer's lines name
    candidacies and messages by id, never a person's contact (issue 17).  Who acted
    (``actor``, ``on_behalf_of``, ``user``, ``by``: Closer's users) stays."""
    for key, value in event.items():
        if key in _USERS:
            continue
        if isinstance(value, str) and ("@" in value or "+" in value):
            event[key] = _CONTACTS.sub("[redacted]", value)
    return event


def configure_logging(fmt: str = "auto", level: str = "info", *,
                      stream: Any = None, cache: bool | None = None) -> None:
    """Route structlog to ``stream`` (stderr) as console lines or JSON lines, from
    ``level`` up.  ``cache=False`` lets a later call reconfigure loggers already used
    (default: `CACHE_LOGGERS`)."""
    cache = CACHE_LOGGERS if cache is None else cache
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    if fmt == "console":
        renderer: structlog.types.Processor = structlog.dev.ConsoleRenderer(colors=False)
        factory: Any = structlog.PrintLoggerFactory(stream)
    else:
        # orjson renders bytes straight to the stream: several times cheaper than json.
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(getattr(stream, "buffer", stream))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # JSON lines carry an error's traceback as text (the console renders its own).
            *([] if fmt == "console" else [structlog.processors.format_exc_info]),
            redact_contacts,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=cache,
    )
