"""Settings, validated once at the edge (CLI start, server start) and then passed down as a typed object.

Environment variables (all optional):
    TUNEFORGE_HOME          data directory (default ~/.tuneforge)
    TUNEFORGE_DATABASE_URL  SQLAlchemy URL; default: SQLite file in the data directory.
                            Any PostgreSQL URL works (postgresql://user:pass@host/db).
    TUNEFORGE_HOST/_PORT    where `tuneforge serve` listens (default 127.0.0.1:8000)
    TUNEFORGE_REGION        region used in ARNs (default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1)
    TUNEFORGE_ACCOUNT_ID    12-digit account id used in ARNs (default 000000000000)
    TUNEFORGE_AUTH          1 (default) = every API call must be signed with a key from `tuneforge keys create`;
                            0 = no authentication (what `tuneforge serve --no-auth` sets)
    TUNEFORGE_CLOCK_SKEW_SECONDS   how far a request's signing time may be from the server's (default 300, as AWS)
    TUNEFORGE_MAX_REQUEST_BYTES    largest request body the server reads (default 16 MiB); larger gets 413
    TUNEFORGE_EXECUTOR      local (default) or ray: customization and ingestion jobs run as Ray Jobs on the cluster
                            whose dashboard RAY_ADDRESS names (http://HEAD:8265), with TUNEFORGE_RAY_PYTHON (default python)
    HF_HUB_OFFLINE          1 = never try to reach the Hugging Face hub
S3 access uses boto3's standard configuration: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, credentials, AWS_REGION.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tuneforge.errors import InvalidInput


def _default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", extra="ignore", frozen=True)

    home: Path = Field(default=Path("~/.tuneforge"), description="data directory")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite in the data directory")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    region: str = Field(default_factory=_default_region, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    account_id: str = Field(default="000000000000", pattern=r"^\d{12}$")
    job_concurrency: int = Field(default=1, ge=1, le=64, description="customization jobs that train at once, across every host sharing the database")
    batch_concurrency: int = Field(default=1, ge=1, le=64, description="batch inference jobs that run at once, across every host sharing the database")
    max_model_units: int = Field(default=8, ge=1, le=256, description="model units (worker processes) one provisioned throughput may ask for")
    max_queue: int = Field(default=64, ge=1, le=100_000, description="requests a serving worker queues before it throttles")
    max_batch_size: int = Field(default=8, ge=1, le=1024, description="sequences a serving worker decodes together")
    serving_engine: Literal["builtin", "vllm"] = Field(default="builtin", description="the engine of the server's generation workers")
    vllm_python: str = Field(default="", description="the Python that has vLLM installed (empty: this one)")
    executor: Literal["local", "ray"] = Field(default="local", description="where detached jobs run: this host, or a Ray cluster")
    # Ray's own variable, as `ray job submit` reads it: the dashboard's Jobs API of the cluster's head
    ray_address: str = Field(default="", validation_alias=AliasChoices("TUNEFORGE_RAY_ADDRESS", "RAY_ADDRESS"),
                             description="the Ray dashboard (http://HEAD:8265) jobs are submitted to")
    ray_python: str = Field(default="python", description="the Python a Ray job runs on the cluster's nodes")
    auth: bool = Field(default=True, description="require signed (SigV4) or bearer-authenticated API calls")
    clock_skew_seconds: int = Field(default=300, ge=1, le=86_400, description="allowed signing-time skew")
    max_request_bytes: int = Field(default=16 << 20, ge=1024, description="largest request body accepted")
    max_upload_bytes: int = Field(default=512 << 20, ge=1024, description="largest file accepted by POST /v1/files (OpenAI's limit)")

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, url: str) -> str:
        if url and not url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg2://")):
            raise ValueError(f"{url!r} is not supported: use sqlite:///path/to/file.db or postgresql://user:pass@host/db")
        return url

    @model_validator(mode="after")
    def _default_database_url(self) -> "Settings":
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.home / 'tuneforge.db'}")
        if self.executor == "ray" and not self.ray_address.startswith(("http://", "https://")):
            raise ValueError(f"TUNEFORGE_EXECUTOR=ray needs RAY_ADDRESS, the Ray dashboard's Jobs API (http://HEAD:8265); "
                             f"got {self.ray_address!r}")
        return self

    @property
    def models_dir(self) -> Path:
        """Materialized and downloaded model checkpoints."""
        return self.home / "models"

    @cached_property
    def offline(self) -> bool:
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def load_settings(**overrides: object) -> Settings:
    """Read the environment once. Raises InvalidInput naming the setting, never a raw pydantic error."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"TUNEFORGE_{name.upper()}" if name != "settings" else "TUNEFORGE_*"
            problems.append(f"{env}: {err['msg']}")
        raise InvalidInput("invalid settings: " + "; ".join(problems), field=str(exc.errors()[0]["loc"])) from None
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings
