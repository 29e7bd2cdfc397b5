"""The filters every page takes, parsed in one place and kept in bookmarkable URLs:
``workspace``, ``recruiter``, ``company``, and a date range ``since``..``until``
(YYYY-MM-DD, both days included)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query

from api.dashboard.session import PageError, SignedIn

_TEXT = {"max_length": 200}


@dataclass(frozen=True, slots=True)
class Filters:
    """What a page is narrowed to (None: everything in the viewer's workspace)."""

    workspace: str
    recruiter: str | None = None
    company: str | None = None
    since: date | None = None
    until: date | None = None

    def query(self, **changes: Any) -> str:
        """These filters (with ``changes``) as a query string, ``?...`` or empty; the
        workspace is left out (it is the viewer's)."""
        values = asdict(replace(self, **changes)) if changes else asdict(self)
        values.pop("workspace")
        pairs = {k: (v.isoformat() if isinstance(v, date) else v)
                 for k, v in values.items() if v not in (None, "")}
        return f"?{urlencode(pairs)}" if pairs else ""

    def figures(self) -> dict[str, str | None]:
        """As `api.read_models`' query arguments: the range's end (a day included here)
        becomes the next day's start (excluded there)."""
        return {"workspace": self.workspace, "recruiter": self.recruiter,
                "company": self.company,
                "since": self.since.isoformat() if self.since else None,
                "until": (self.until + timedelta(days=1)).isoformat() if self.until else None}

    @property
    def active(self) -> bool:
        return any((self.recruiter, self.company, self.since, self.until))

    def in_range(self, moment: datetime | None) -> bool:
        """Whether ``moment`` falls in the date range (UTC days; no range keeps all)."""
        if moment is None:
            return self.since is None and self.until is None
        day = moment.astimezone(UTC).date()
        return (self.since is None or day >= self.since) and \
            (self.until is None or day <= self.until)

    def recruiter_ids(self, models: dict[str, Any] | None) -> set[str] | None:
        """The ids of the candidacies the recruiter filter keeps (None: no such filter):
        those whose interview the recruiter recorded, from the pipeline read model
        (``models``: `pages.read_models`; None, a store without them, keeps none)."""
        if self.recruiter is None:
            return None
        if models is None:
            return set()
        return {str(cid) for (cid,) in models["pipeline"].view.read(
            "SELECT candidacy_id FROM rm_pipeline WHERE workspace=? AND recruiter=?",
            (self.workspace, self.recruiter))}

    def keeps(self, row: Any, ids: set[str] | None) -> bool:
        """Whether a candidacy's current ``row`` passes the company and recruiter filters
        (``ids``: `recruiter_ids`)."""
        return (self.company is None or row.company == self.company) and \
            (ids is None or row.id in ids)


def _day(name: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PageError(400, f"{name}: {value!r} is not a date written YYYY-MM-DD") from None


async def page_filters(
    viewer: SignedIn,
    workspace: Annotated[str | None, Query(**_TEXT)] = None,
    recruiter: Annotated[str | None, Query(**_TEXT)] = None,
    company: Annotated[str | None, Query(**_TEXT)] = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
) -> Filters:
    """The request's filters; another workspace than the viewer's is not found (404)."""
    if workspace and workspace != viewer.workspace:
        raise PageError(404, "No such page.")
    start, end = _day("since", since), _day("until", until)
    if start and end and start > end:
        raise PageError(400, "since: the range starts after it ends")
    return Filters(workspace=viewer.workspace, recruiter=(recruiter or "").strip() or None,
                   company=(company or "").strip() or None, since=start, until=end)


PageFilters = Annotated[Filters, Depends(page_filters)]
