"""Runtime settings: defaults < environment (``PEFT_ENGINE_*``) < command-line flags."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error"]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PEFT_ENGINE_", frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="interface to bind; loopback only unless allow_remote")
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port, reported in the ready line")
    data_dir: Path | None = Field(None, description="per-user writable folder; platformdirs default")
    token: str = Field(default_factory=lambda: secrets.token_urlsafe(32), min_length=16)
    parent_pid: int | None = Field(None, gt=0, description="exit when this process dies")
    log_level: LogLevel = "info"
    # NoDecode: the environment gives a comma-separated list, not JSON.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field((), description="exact origins allowed to call the API")
    allow_remote: bool = Field(False, description="allow binding a non-loopback host (Host check stays)")
    worker_stop_timeout_s: float = Field(1.2, gt=0, le=30)
    exit_after_ready: bool = Field(False, description="exit at once after printing the ready line: what a "
                                   "startup instruction count (benchmarks/measure/instructions.py) measures")
    release_startup_memory: bool = Field(True, description="once ready, release the clean file pages and free "
                                         "heap that only startup used (Linux; see backend/memory_release.py)")
    max_waiting_generations: int = Field(4, ge=0, le=1000, description="generations (and merges) that may wait "
                                         "for the model; beyond them the answer is 429 with Retry-After")
    max_connections: int = Field(0, ge=0, le=1_000_000, description="open connections at most (0: what the "
                                 "descriptor limit allows, minus a reserve); beyond it new ones are closed at once")
    idle_timeout_s: float = Field(30.0, gt=0, le=3600, description="a connection that sends nothing for this "
                                  "long is closed (the first request, or the next on a kept-alive one)")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if "*" in origin:
                raise ValueError(f"wildcard origin {origin!r} is not allowed: list exact origins")
            if not origin.startswith(("http://", "https://", "app://", "file://")):
                raise ValueError(f"origin {origin!r} must start with a scheme such as http://")
        return value

    @field_validator("host")
    @classmethod
    def _loopback(cls, value: str) -> str:
        return value.strip("[]")

    def check_host(self) -> None:
        if self.host not in LOOPBACK_HOSTS and not self.allow_remote:
            raise ValueError(
                f"refusing to bind {self.host!r}: the API is for the local app only; "
                f"use one of {', '.join(LOOPBACK_HOSTS)} or set PEFT_ENGINE_ALLOW_REMOTE=1"
            )
