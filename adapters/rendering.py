"""Jinja2 rendering of message templates, strict about every variable.

A template is named ``{kind}.{medium}.j2`` (e.g. ``thank_you.card.j2``).  It
renders an optional first line ``Subject: ...``, a blank line, then the body.
A workspace overrides any template by putting a file of the same name in its
override folder; an override may extend the shipped one as ``default/<name>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from adapters.errors import TemplateError
from adapters.message import MessageContext, local

_UNDEFINED = re.compile(r"'([^']+)' is undefined")
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True, slots=True)
class Rendered:
    """The text a template produced, and which template produced it."""

    template: str
    subject: str
    body: str


def names(people: Iterable[Any]) -> str:
    """"A", "A and B", "A, B and C" from people (their ``.name``) or strings."""
    items = [getattr(p, "name", p) for p in people]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _refuse_none(value: Any) -> Any:
    # Printing None would put "None" (a blank in disguise) into a message.
    if value is None:
        raise jinja2.UndefinedError(
            "a value printed as None (an optional field that is unset): guard it with {% if %}")
    return value


class Renderer:
    """Renders `MessageContext` through the override folder first, then the defaults."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        self.override_dir = Path(override_dir) if override_dir is not None else None
        defaults = jinja2.PackageLoader("adapters", "templates")
        loaders: list[jinja2.BaseLoader] = []
        if self.override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(self.override_dir)))
        loaders += [defaults, jinja2.PrefixLoader({"default": defaults})]
        # Sandboxed: override templates come from a workspace and must not reach Python.
        self.environment = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text messages, not HTML
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_refuse_none,
        )
        self.environment.filters["names"] = names

    @staticmethod
    def template_name(kind: str, medium: str) -> str:
        """The file name of the template for ``kind`` on ``medium``."""
        return f"{kind}.{medium}.j2"

    def render(self, context: MessageContext, medium: str) -> Rendered:
        """Render the ``context.kind`` template for ``medium``.

        Raises `TemplateError` naming the template (and the variable, and the
        line when known) for a missing template or variable or a syntax error.
        """
        name = self.template_name(context.kind.value, medium)
        try:
            template = self.environment.get_template(name)
            text = template.render(self.variables(context))
        except jinja2.TemplateNotFound as error:
            raise TemplateError(name, f"no such template ({error.name!r}) in "
                                f"{self._where()}") from None
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(error.name or name, f"syntax error: {error.message}",
                                line=error.lineno) from None
        except jinja2.UndefinedError as error:
            variable = _variable(str(error))
            reason = (f"undefined variable {variable!r} ({error})" if variable
                      else str(error))
            raise TemplateError(name, reason, variable=variable,
                                line=_template_line(error.__traceback__)) from None
        except SecurityError as error:
            raise TemplateError(name, f"unsafe: {error}",
                                line=_template_line(error.__traceback__)) from None
        except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as error:
            raise TemplateError(name, f"failed: {type(error).__name__}: {error}",
                                line=_template_line(error.__traceback__)) from None
        subject, body = _split(text)
        return Rendered(template=name, subject=subject, body=body)

    def variables(self, context: MessageContext) -> dict[str, Any]:
        """The names a template may use: the context's fields plus a few helpers."""
        values: dict[str, Any] = {
            field: getattr(context, field) for field in type(context).model_fields
        }
        values["kind"] = context.kind.value
        values["addressees"] = context.addressees
        values["audience"] = context.audience()
        values["interview_day"] = _interview_day(context)
        values["when"] = lambda moment: when(moment, context)
        values["day"] = lambda moment: day(moment, context)
        return values

    def _where(self) -> str:
        if self.override_dir is None:
            return "the package defaults"
        return f"{self.override_dir} or the package defaults"


def when(moment: datetime, context: MessageContext) -> str:
    """E.g. "Thursday 3 December at 14:00 GMT", in the candidacy's time zone."""
    at = local(moment, context)
    return f"{day(moment, context)} at {at:%H:%M} {at.tzname()}"


def day(moment: datetime, context: MessageContext) -> str:
    """E.g. "Thursday 3 December", in the candidacy's time zone."""
    at = local(moment, context)
    return f"{at:%A} {at.day} {at:%B}"


def _interview_day(context: MessageContext) -> str:
    if context.interviewed_at is None:
        return "today"
    now = context.occurred_at or datetime.now(context.zone)
    then_day = local(context.interviewed_at, context).date()
    days = (local(now, context).date() - then_day).days
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"on {day(context.interviewed_at, context)}"


def _split(text: str) -> tuple[str, str]:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    subject = ""
    if lines and lines[0].startswith("Subject:"):
        subject = lines.pop(0).removeprefix("Subject:").strip()
    body = _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
    return subject, body


def _variable(message: str) -> str | None:
    match = _UNDEFINED.search(message) or _NO_ATTRIBUTE.search(message)
    return match.group(1) if match else None


def _template_line(trace: TracebackType | None) -> int | None:
    # Jinja rewrites tracebacks so template frames carry the template's line numbers.
    line = None
    while trace is not None:
        if not trace.tb_frame.f_code.co_filename.endswith(".py"):
            line = trace.tb_lineno
        trace = trace.tb_next
    return line
