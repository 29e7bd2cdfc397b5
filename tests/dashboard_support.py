"""Helpers of the dashboard tests: signing a client in through the sign-in form, and
reading a page's form fields back (for the HTTP tier; the browser tier clicks)."""

from __future__ import annotations

import re
from typing import Any

ORIGIN = "http://testserver"
"""TestClient's own origin: what a browser sends as `Origin` on the dashboard's forms."""

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: Any, token: str) -> Any:
    """Sign ``client`` in with ``token`` as a browser would: the form, its CSRF token, the
    same-origin POST; answers the redirect."""
    page = client.get("/dashboard/sign-in")
    assert page.status_code == 200, page.text
    response = client.post("/dashboard/sign-in",
                           data={"csrf": csrf_of(page.text), "token": token,
                                 "next": "/dashboard/today"},
                           headers={"Origin": ORIGIN}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response


def form_fields(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to ``action`` on the page."""
    start = html.index(f'action="{action}"')
    form = html[start:html.index("</form>", start)]
    return dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form))
