"""The one configuration object. Every variable of SPEC.md lives here, with its default."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ovencast.errors import Misconfigured


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # Where the embedded shape keeps its database file, models and plots.
    ovencast_home: Path = Field(default=Path(".ovencast"))
    # Default (None): SQLite under OVENCAST_HOME. Service mode: postgresql+asyncpg://...
    # (postgresql:// means the same: `_async_driver`).
    database_url: str | None = None

    # Data rules
    min_training_data_days: int = Field(default=30, ge=1)
    recommended_training_data_days: int = Field(default=90, ge=1)

    # Validation at the door (datasets/reader.py): what an import accepts. Dates from
    # DATA_EARLIEST_DATE to today + DATA_MAX_YEARS_AHEAD years (future rows: supplied
    # weather forecasts, calendar); quantities and regressor values at most DATA_MAX_VALUE
    # in absolute value; at most IMPORT_MAX_ROWS data rows per file, which bounds the
    # reader's memory (about 40 bytes a sales row at the peak; README "Importing data").
    data_earliest_date: date = date(1990, 1, 1)
    data_max_years_ahead: int = Field(default=2, ge=0, le=100)
    data_max_value: float = Field(default=1e9, gt=0, allow_inf_nan=False)
    import_max_rows: int = Field(default=5_000_000, ge=1)

    # Training
    max_concurrent_training_jobs: int = Field(default=3, ge=1)
    # Float so tests can use fractions of a minute; SPEC default 30.
    max_training_time_minutes: float = Field(default=30.0, gt=0)
    # How long a (tenant, product) lock is waited for before the product is reported as
    # busy (another process trains it).
    lock_wait_timeout_seconds: float = Field(default=60.0, ge=0)

    # Model artifacts
    model_storage_path: str | None = None  # default: OVENCAST_HOME/models
    model_versioning_enabled: bool = True
    model_backup_enabled: bool = True
    # fsspec storage options of MODEL_STORAGE_PATH's backend, as JSON: for an S3-compatible
    # store e.g. {"endpoint_url": "http://minio:9000"}. Credentials best come from the
    # backend's own environment (AWS_ACCESS_KEY_ID, ...), not from here.
    model_storage_options: dict[str, Any] = Field(default_factory=dict)

    # Database pool (service mode; SQLite ignores the pool sizes)
    db_pool_size: int = 10
    db_max_overflow: int = 20
    db_pool_timeout: float = 30
    db_pool_recycle: int = 3600
    db_pool_pre_ping: bool = True
    db_echo: bool = False

    # Upstream HTTP timeouts (service mode), seconds
    http_connect_timeout: float = 30
    http_read_timeout: float = 60
    http_write_timeout: float = 30
    http_pool_timeout: float = 30

    # Upstream services (service mode). SALES_SERVICE_URL set: sales, calendar and the
    # tenant's profile come over HTTP instead of from imported data (docs/UPSTREAM.md);
    # WEATHER/TRAFFIC_SERVICE_URL unset: those regressors are not fetched.
    sales_service_url: str | None = None
    weather_service_url: str | None = None
    traffic_service_url: str | None = None
    # Circuit breakers: consecutive failed requests that open it, seconds until a trial.
    breaker_sales_failures: int = Field(default=5, ge=1)
    breaker_sales_recovery_s: float = Field(default=60.0, gt=0)
    breaker_weather_failures: int = Field(default=3, ge=1)
    breaker_weather_recovery_s: float = Field(default=30.0, gt=0)
    breaker_traffic_failures: int = Field(default=3, ge=1)
    breaker_traffic_recovery_s: float = Field(default=30.0, gt=0)
    # Retries of idempotent GETs (connection errors, timeouts, 5xx; never 4xx): at most
    # this many attempts, and no new attempt once the total time would be exceeded.
    upstream_retry_attempts: int = Field(default=3, ge=1)
    upstream_retry_total_s: float = Field(default=120.0, gt=0)
    upstream_retry_initial_s: float = Field(default=0.5, ge=0)
    upstream_retry_max_s: float = Field(default=8.0, ge=0)
    upstream_retry_jitter_s: float = Field(default=0.5, ge=0)
    # Rows asked for per page (`limit`); a service may send fewer.
    upstream_page_size: int = Field(default=5000, ge=1)

    # Service-shape workers: heartbeat period, and how long a silent worker's jobs wait
    # before another worker retries them (procrastinate's stalled-job handling).
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    worker_stalled_after_seconds: float = Field(default=30.0, gt=0)
    # Each `ovencast worker` serves /metrics and /health on WORKER_METRICS_HOST:PORT
    # (observability/worker_server.py); 0: not served. Containers set 0.0.0.0 and a port.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    # Tracing (OpenTelemetry, observability/tracing.py): off unless the OTLP/HTTP endpoint
    # is set (e.g. http://otel-collector:4318); spans name the service OTEL_SERVICE_NAME.
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "ovencast"

    # Access to the API (service shape; docs/SECURITY.md). Browser origins allowed by
    # CORS and on the job-events WebSocket: comma-separated, exact (`https://app.example`),
    # none by default. Requests per minute per tenant (all its keys together; a global
    # key on its own), 0: no limit. Rate-limit counts in Redis (`redis://host:port`) when
    # set, so that every API process shares them; in process memory otherwise. The key
    # prefix keeps deployments that share one Redis apart.
    allowed_origins: str = ""
    rate_limit_per_minute: int = Field(default=600, ge=0)
    rate_limit_storage_url: str | None = None
    rate_limit_key_prefix: str = "ovencast"
    # The web console (console/, docs/SECURITY.md): the secret its session cookies are
    # signed with (none: a random one per process; sessions then end when it restarts and
    # are not shared between API processes) and how long a session lasts.
    console_session_secret: SecretStr | None = Field(default=None, min_length=16)
    console_session_hours: float = Field(default=8.0, gt=0, le=24 * 30)

    # A Dask scheduler (`tcp://scheduler:8786`) that trains the tenant stage's global
    # LightGBM boosters with LightGBM's Dask interface, for tenants whose stage outgrows
    # one machine (training/dask_stage.py, docs/decisions/012-scale.md); per-product work
    # stays on the pool / procrastinate workers. Unset: the boosters train in the
    # preparing process.
    dask_scheduler_address: str | None = None
    # The tenant stage's boosters learn from at most this many rows (product-days): a
    # larger tenant's products each keep the same share of their days, drawn uniformly
    # (decision 012). 0: every row.
    global_model_max_rows: int = Field(default=1_000_000, ge=0)
    # A tenant with at least this many regular products to train under `auto` gets its
    # blend partner's weight once, from the partner windows of its largest products
    # (forecasting/global_stage.weigh_partner), instead of each product backtesting the
    # partner itself: 2 partner fits a product instead of 5 (decision 016).
    tenant_blend_min_products: int = Field(default=100, ge=1)

    # Threads that compute forecasts off the API's event loop (forecasts/service.py):
    # CPU work under the GIL, so a few; more requests wait their turn.
    forecast_threads: int = Field(default=2, ge=1, le=64)

    # Model governance (docs/decisions/008-model-governance.md). A new version becomes
    # active only if its WAPE on the last PROMOTION_WINDOWS 28-day windows of the new data
    # is at most the active version's (refitted there) times 1 + PROMOTION_TOLERANCE;
    # otherwise it is kept as a challenger (training/promotion.py).
    promotion_tolerance: float = Field(default=0.02, ge=0, lt=1)
    promotion_windows: int = Field(default=3, ge=1, le=12)
    # Realised accuracy (accuracy/): a product's drift warning when its realised WAPE
    # over the last 4 weeks exceeds its backtest WAPE times DRIFT_FACTOR.
    drift_factor: float = Field(default=1.5, gt=1)
    # Champion vs challenger (accuracy/comparison.py): a difference is significant at
    # this level; a challenger that wins significantly over the last
    # AUTO_PROMOTE_AFTER_WEEKS weeks of shadow forecasts is promoted by the scheduled
    # work (none: only `ovencast compare --promote` promotes).
    comparison_alpha: float = Field(default=0.05, gt=0, lt=0.5)
    auto_promote_after_weeks: int | None = Field(default=None, ge=1, le=52)
    # Scheduled work (schedules/, service shape): how often the workers look for tenants
    # whose schedule is due (a procrastinate periodic task; cron, a 6th field for
    # seconds), and how often a scheduled run checks whether its training has ended.
    schedule_check_cron: str = "* * * * *"
    schedule_poll_seconds: float = Field(default=15.0, gt=0, le=3600)

    # Request bodies (service shape), checked while they stream in (api/body_limit.py):
    # a dataset upload (all its files together) and any other body.
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # A client's request headers must arrive within this many seconds of the connection
    # (or of the request's first byte), and its body may pause no longer than this
    # between two reads: 408 / closed (api/server_protocol.py, `ovencast serve`).
    request_header_timeout_seconds: float = Field(default=15.0, gt=0)
    request_body_timeout_seconds: float = Field(default=30.0, gt=0)

    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if not value:
            return None
        # Imported here: it loads SQLAlchemy, which the CLI's start must not
        # (tests/cli/test_startup.py); only a DATABASE_URL needs it.
        from ovencast.db.urls import async_database_url

        return async_database_url(value)

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        self.ovencast_home = self.ovencast_home.expanduser().absolute()
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.ovencast_home / 'ovencast.db'}"

    @property
    def resolved_model_storage_path(self) -> str:
        return self.model_storage_path or str(self.ovencast_home / "models")

    @property
    def lock_dir(self) -> Path:
        return self.ovencast_home / "locks"

    @property
    def allowed_origin_list(self) -> list[str]:
        """ALLOWED_ORIGINS as a list (a trailing '/' dropped: an Origin never has one)."""
        return [origin.strip().rstrip("/") for origin in self.allowed_origins.split(",")
                if origin.strip()]

    @property
    def max_training_time_seconds(self) -> float:
        return self.max_training_time_minutes * 60.0


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; a bad variable is a `Misconfigured` that names
    each one and says why (the CLI prints it as one error, not a traceback)."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']).upper() or 'settings'}: "
            f"{problem['msg'].removeprefix('Value error, ')}" for problem in error.errors())
        raise Misconfigured(f"configuration from the environment: {problems}") from None
