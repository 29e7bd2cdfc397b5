"""The one settings object: every knob, read from the environment (prefix ``CLOSER_``)."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Closer's configuration, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="CLOSER_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./closer.db",
        description="sqlite:///PATH (default ./closer.db) or postgresql://USER@HOST:PORT/DB",
    )
    log_format: Literal["console", "json", "auto"] = Field(
        default="auto", description="console in a terminal, JSON lines otherwise, when auto"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"


@cache
def get_settings() -> Settings:
    """The process's settings (read once)."""
    return Settings()
