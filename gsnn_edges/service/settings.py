"""The one settings class of the service; nothing else reads ``os.environ``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_TENANT = "local"


class Settings(BaseSettings):
    """Runtime configuration, read from ``GSNN_EDGES_*`` environment variables.

    Model and training hyperparameters are job spec fields, never settings.
    """

    model_config = SettingsConfigDict(env_prefix="GSNN_EDGES_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Artifacts and embedded state.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite file in the data dir."
    )
    broker_url: str | None = Field(
        None, description="Celery broker; default kombu filesystem transport in the data dir."
    )
    api_keys: str = Field("", description="Comma separated tenant:key pairs.")
    max_upload_mb: float = Field(100.0, gt=0, description="Request body size limit (MiB).")
    max_table_cells: int = Field(
        50_000_000,
        gt=0,
        description="Rows x columns of an uploaded table; a Parquet file's are read from its "
        "footer before decoding, so a small compressed file cannot expand past 8 bytes "
        "per allowed cell.",
    )
    max_json_weights: int = Field(
        1_000_000,
        gt=0,
        description="Entries of W served as JSON (GET .../weights); larger W answer 422 "
        "pointing to ?format=npy, which streams the raw array.",
    )
    worker_memory_mb: float = Field(
        16384.0,
        gt=0,
        description="Memory one job may take on a worker (MiB); a job whose estimated peak "
        "(gsnn_edges.train_validation.estimate_job_bytes) is larger is refused at submit, "
        "and a CPU job that still allocates past it fails once with 'out of memory' "
        "(RLIMIT_DATA) instead of being killed and re-run.",
    )
    job_time_limit_s: int = Field(24 * 3600, gt=0, description="Hard limit for one job.")
    heartbeat_interval_s: float = Field(10.0, gt=0, description="Worker heartbeat period.")
    stale_after_s: float = Field(
        120.0,
        gt=0,
        description="Heartbeat age that marks a job lost; also the age of a queued job's "
        "message after which the reaper sends it again (then at doubling intervals).",
    )
    max_attempts: int = Field(3, ge=1, description="Claims before a lost job is failed.")
    reaper_interval_s: float = Field(30.0, gt=0, description="Period of the stale-job reaper.")
    confirm_chunks: int = Field(
        1,
        ge=1,
        le=64,
        description="Child jobs a job's confirmation (confirm.top) fans out into, so that "
        "free workers fit its candidates at once (service.children); 1 (default) confirms "
        "in the job's own process, the fastest on one worker (benchmarks/README.md, "
        "'Confirmation on workers'). Set it to the worker processes usually free.",
    )
    queue_name: str = Field("gsnn_edges", description="Celery queue of training jobs.")
    max_active_jobs: int = Field(
        50,
        ge=1,
        description="Queued plus running jobs one tenant may have; a submit over it is 429 "
        "with Retry-After.",
    )
    rate_limit_per_s: float = Field(
        500.0,
        gt=0,
        description="Requests per second one API key (or, without a valid key, one client "
        "address) may make to one API process, sustained; over it is 429 with "
        "Retry-After. Health, readiness and metrics are not limited.",
    )
    rate_limit_burst: int = Field(
        1000, ge=1, description="Requests a key may make at once before the rate applies."
    )
    log_format: Literal["json", "text"] = Field(
        "json",
        description="Log lines as JSON objects (request_id, tenant and job_id on every "
        "line) or as the same fields in text.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level logged."
    )

    @property
    def resolved_database_url(self) -> str:
        """Database URL, defaulting to ``sqlite:///<data_dir>/gsnn_edges.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'gsnn_edges.db'}"

    @property
    def broker_folder(self) -> Path:
        """Folder of the embedded filesystem broker."""
        return self.data_dir.resolve() / "broker"

    @property
    def resolved_broker_url(self) -> str:
        """Broker URL, defaulting to the kombu filesystem transport."""
        return self.broker_url or "filesystem://"

    @property
    def is_filesystem_broker(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem://")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def tenant_keys(self) -> dict[str, str]:
        """Map of API key -> tenant parsed from ``api_keys``.

        Raises:
            ValueError: an entry is not ``tenant:key`` or a key repeats.
        """
        keys: dict[str, str] = {}
        for entry in filter(None, (e.strip() for e in self.api_keys.split(","))):
            tenant, sep, key = entry.partition(":")
            if not sep or not tenant.strip() or not key.strip():
                raise ValueError(f"GSNN_EDGES_API_KEYS entry {entry!r} is not 'tenant:key'")
            if key.strip() in keys:
                raise ValueError("GSNN_EDGES_API_KEYS repeats a key")
            keys[key.strip()] = tenant.strip()
        return keys

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tenant_keys)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once from the environment."""
    return Settings()
