"""A token's role, apart from the tokens themselves so that the command line can name the
roles (`closer token create --role`) without importing the store."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a token may do: admins and recruiters issue commands, viewers only read."""

    ADMIN = "admin"
    RECRUITER = "recruiter"
    VIEWER = "viewer"

    @property
    def can_write(self) -> bool:
        return self is not Role.VIEWER
