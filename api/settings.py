"""The one settings object: every knob, read from the environment (prefix ``CLOSER_``)."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.errors import InvalidInput
from engine.values import CountryCode, validated


class _CountryCheck(BaseModel):
    country: CountryCode


class Settings(BaseSettings):
    """Closer's configuration, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="CLOSER_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./closer.db",
        description="sqlite:///PATH (default ./closer.db), postgresql://USER@HOST:PORT/DB, "
                    "or memory://NAME (in this process only: tests)",
    )
    log_format: Literal["console", "json", "auto"] = Field(
        default="auto", description="console in a terminal, JSON lines otherwise, when auto"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    recent_candidacies: int = Field(
        default=1000, ge=0, le=1_000_000,
        description="candidacies a process keeps as its last commands saved them, so the next "
                    "command on one skips reading it back (0: read every time)",
    )

    # -- the HTTP API (`closer serve`) ---------------------------------------------
    host: str = Field(default="127.0.0.1", description="interface `closer serve` binds")
    port: int = Field(default=8000, ge=1, le=65535, description="port `closer serve` binds")
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    concurrent_commands: int | None = Field(
        default=None, ge=1, le=64,
        description="commands a worker process runs at once (each in a thread; the others "
                    "wait their turn); default: 4 on SQLite (its commits are local and "
                    "quick: more at once only contend for the interpreter), 40 on "
                    "PostgreSQL (its commits wait on the server: more in flight make "
                    "bigger batches)",
    )
    token_cache_seconds: float = Field(
        default=30.0, ge=0, le=3600,
        description="how long a process trusts a verified API token before reading it again",
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=64 * 1024 * 1024,
        description="the largest request body accepted (413 past it, before it is read)",
    )
    max_json_depth: int = Field(
        default=32, ge=4, le=256,
        description="how deeply a request body's JSON may nest arrays and objects (422 past it)",
    )
    session_secret: SecretStr | None = Field(
        default=None, min_length=32,
        description="the key that signs the dashboard's session cookies (HMAC-SHA256), "
                    "32+ characters; unset, `closer serve` draws one at start (signing "
                    "everyone out at each restart)")
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30,
        description="how long a dashboard sign-in lasts")
    sse_poll_seconds: float = Field(
        default=0.25, gt=0, le=10,
        description="how often an idle /events/stream looks for new events",
    )
    sse_heartbeat_seconds: float = Field(
        default=15.0, gt=0, le=300,
        description="an idle /events/stream sends a comment this often to keep proxies open",
    )

    # -- the outbox (`closer dispatch`, and `closer serve` in the background) -----------
    smtp_host: str | None = Field(
        default=None, description="SMTP relay host; unset, email is written to the folder "
                                  "TASKS_DIR/mail (.eml and .txt, the console channel) instead")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = Field(default=True, description="upgrade with STARTTLS")
    smtp_implicit_tls: bool = Field(default=False, description="TLS from the start (465)")
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_sender: str = Field(default="Closer <closer@localhost>",
                             description="From of Closer's own mail (reminders, alerts)")
    smtp_timeout: float = Field(default=10.0, gt=0, le=300)
    webhook_url: str | None = Field(
        default=None, description="where the webhook channel POSTs (unset: no webhook channel)")
    webhook_secret: str | None = Field(default=None, description="HMAC secret for the webhook")
    webhook_workspaces: str = Field(
        default="", description="comma-separated workspaces whose email goes to the webhook")
    tasks_dir: str = Field(default="./closer-tasks",
                           description="folder for card/voicemail tasks and calendar invites")
    recruiter_name: str | None = Field(default=None, description="who gets recruiter alerts")
    recruiter_email: str | None = None
    outbox_max_attempts: int = Field(default=5, ge=1, le=50)
    outbox_backoff_seconds: float = Field(default=60.0, gt=0, le=86400)
    outbox_batch: int = Field(default=100, ge=1, le=10000)
    approval_workspaces: str = Field(
        default="", description="comma-separated workspaces where a person approves each "
                                "proofed message before it goes")
    channel_routes: str = Field(
        default="", description="comma-separated WORKSPACE:CHANNEL=ADAPTER: that workspace's "
                                "CHANNEL messages go through ADAPTER (a built-in channel or a "
                                "`closer.adapters` plugin), e.g. `acme:email=crm`")

    @field_validator("channel_routes")
    @classmethod
    def _routes_well_formed(cls, value: str) -> str:
        for route in filter(None, (r.strip() for r in value.split(","))):
            workspace, _, rest = route.partition(":")
            channel, _, adapter = rest.partition("=")
            if not (workspace.strip() and channel.strip() and adapter.strip()):
                raise ValueError(f"{route!r} is not WORKSPACE:CHANNEL=ADAPTER")
        return value

    def routes(self) -> dict[str, dict[str, str]]:
        """Workspace → {channel: adapter}: `webhook_workspaces` (email → webhook, when a
        webhook URL is set), then `channel_routes`."""
        routes: dict[str, dict[str, str]] = {
            w.strip(): {"email": "webhook"}
            for w in self.webhook_workspaces.split(",") if w.strip() and self.webhook_url}
        for route in filter(None, (r.strip() for r in self.channel_routes.split(","))):
            workspace, _, rest = route.partition(":")
            channel, _, adapter = rest.partition("=")
            routes.setdefault(workspace.strip(), {})[channel.strip()] = adapter.strip()
        return routes

    # -- workspaces ----------------------------------------------------------------------
    workspace_countries: str = Field(
        default="", description="comma-separated WORKSPACE=CC pairs: the country (ISO 3166, "
                                "for public holidays) of an interview that names none")

    @field_validator("workspace_countries")
    @classmethod
    def _known_countries(cls, value: str) -> str:
        for pair in filter(None, (p.strip() for p in value.split(","))):
            workspace, _, country = pair.partition("=")
            if not workspace.strip() or not country.strip():
                raise ValueError(f"{pair!r} is not WORKSPACE=COUNTRY")
            try:
                validated(_CountryCheck, {"country": country.strip()})
            except InvalidInput as error:
                raise ValueError(f"{workspace.strip()}: {error.reason}") from None
        return value

    def country_for(self, workspace: str) -> str | None:
        """The workspace's default country, if the settings give one."""
        for pair in filter(None, (p.strip() for p in self.workspace_countries.split(","))):
            name, _, country = pair.partition("=")
            if name.strip() == workspace:
                return country.strip().upper()
        return None

    # -- the audit (`closer audit`, docs/audit.md) ----------------------------------------
    audit_key_file: str | None = Field(
        default=None,
        description="the Ed25519 key that signs the audit's tree heads and exports, made "
                    "there on first use (owner-only); default: closer-audit.key beside a "
                    "SQLite database, else in the working folder.  Keep it away from the "
                    "database's administrators: who holds both can rewrite history unseen")
    audit_checkpoint_every_seconds: float = Field(
        default=3600.0, gt=0, le=7 * 86400,
        description="how often `closer serve` records a signed checkpoint of the log")

    def concurrent_command_count(self) -> int:
        """`concurrent_commands`, or its default for the store (see there)."""
        if self.concurrent_commands is not None:
            return self.concurrent_commands
        return 40 if self.database_url.startswith(("postgresql:", "postgres:")) else 4

    def audit_key_path(self) -> str:
        """`audit_key_file`, or its default (see there)."""
        if self.audit_key_file:
            return self.audit_key_file
        if self.database_url.startswith("sqlite:///"):
            from pathlib import Path
            from urllib.parse import unquote

            return str(Path(unquote(self.database_url.removeprefix("sqlite:///")))
                       .parent / "closer-audit.key")
        return "./closer-audit.key"

    # -- background work inside `closer serve` ----------------------------------------
    scheduler_every_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="how often `closer serve` ticks the scheduler")
    dispatch_every_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="how often `closer serve` runs the outbox")
    projections_every_seconds: float = Field(
        default=1.0, gt=0, le=3600,
        description="how often `closer serve` brings the dashboard's read models up to date")
    background: bool = Field(
        default=True, description="run the scheduler and the outbox inside `closer serve`")
    background_restart_seconds: float = Field(
        default=1.0, gt=0, le=3600,
        description="a crashed background worker is restarted after this long, doubled for "
                    "each crash in a row (at most `background_restart_max_seconds`)")
    background_restart_max_seconds: float = Field(default=300.0, gt=0, le=86400)
    background_down_seconds: float = Field(
        default=60.0, gt=0, le=86400,
        description="/healthz answers 503 once a background worker has been down this long")
    background_state_file: str | None = Field(
        default=None,
        description="where `closer serve` keeps its background workers' state for /healthz "
                    "(default: a file in the temporary folder, named by its process id)")


@cache
def get_settings() -> Settings:
    """The process's settings (read once)."""
    return Settings()
