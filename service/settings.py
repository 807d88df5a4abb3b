"""Every setting comes from ARMSCOPE_* environment variables, with defaults that need no server."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARMSCOPE_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".armscope")
    database_url: str | None = None
    broker_url: str | None = None
    api_token: str | None = Field(None, repr=False, description="Bearer token for every API route but /health.")
    read_token: str | None = Field(None, repr=False, description="A token that may only read.")
    secret_key: str | None = Field(
        None, repr=False, min_length=32,
        description="Signs browser sessions; unset, a random key is kept in ARMSCOPE_HOME/secret_key.",
    )
    auth_failures_per_minute: int = Field(
        10, gt=0, description="Failed logins or bearer tokens per client address a minute before 429."
    )
    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest request body accepted.")
    heartbeat_seconds: float = Field(1.0, gt=0, description="Heartbeat, progress and cancel-check interval.")
    run_threads: int | None = Field(
        None, ge=1, description="CPU threads each run's torch uses; a worker sets it to its cores over its concurrency "
        "unless given, so that runs side by side do not fight over cores.",
    )
    heartbeat_timeout: float = Field(
        60.0, gt=0, description="Seconds without a heartbeat after which a worker counts as dead."
    )
    db_retry_seconds: float = Field(
        300.0, gt=0, description="How long a worker retries database writes while the database restarts."
    )
    delivery_pause_seconds: float = Field(
        0.0, ge=0, description="Testing aid: a pause between receiving a run and claiming it."
    )

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'armscope.db'}"

    @cached_property
    def resolved_broker_url(self) -> str:
        """The embedded broker is kombu's SQLAlchemy transport on its own SQLite file."""
        return self.broker_url or f"sqla+sqlite:///{self.home / 'broker.db'}"

    def run_dir(self, run_id: int) -> Path:
        return self.home / "runs" / str(run_id)

    def ensure_home(self) -> None:
        (self.home / "runs").mkdir(parents=True, exist_ok=True)


def get_settings() -> Settings:
    return Settings()
