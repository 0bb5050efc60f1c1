"""The one typed settings object: `FINSENTRY_*` environment variables over an optional YAML file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_HOME = Path.home() / ".cache" / "finsentry"


class YamlSource(PydanticBaseSettingsSource):
    """Reads the file named by FINSENTRY_CONFIG (lowest priority after defaults)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.data: dict[str, Any] = {}
        if path is not None:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: settings file must hold a mapping, got {type(loaded).__name__}")
            self.data = loaded

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FINSENTRY_", extra="ignore")

    config: Path | None = Field(None, description="Optional YAML file with any of these settings")
    home: Path = Field(DEFAULT_HOME, description="Where service data and models live")
    cache_dir: Path = Field(DEFAULT_HOME, description="Downloads kept between runs (Kafka's jars)")

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_news: str = "news.raw"
    topic_comments: str = "comments.raw"
    topic_scored: str = "events.scored"
    topic_dlq: str = "events.dlq"
    topic_partitions: int = Field(4, ge=1)
    consumer_group: str = "finsentry-worker"
    broker_session_timeout_s: float = Field(10.0, gt=0)

    # Redis and SQL
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="redis://HOST:PORT/DB, or over TLS with an ACL user rediss://USER:PASSWORD@HOST:PORT/DB"
        " (percent-encode the password); the password is scrubbed from log lines",
    )
    redis_prefix: str = "fs"
    window_bucket_s: int = Field(60, ge=1)
    window_retention_s: int = Field(2 * 86_400, ge=60)
    window_lateness_s: int = Field(300, ge=0)
    story_ttl_s: int = Field(
        86_400,
        ge=60,
        description="Near-copies of a story are found for one to two of these after its first event (by event"
        " time); the story index's keys live twice this long",
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; empty: SQLite under home. PostgreSQL over TLS takes libpq's options in"
        " the query, passed through to the driver: postgresql+psycopg://USER:PASSWORD@HOST:5432/DB"
        "?sslmode=verify-full&sslrootcert=/etc/finsentry/pg-ca.pem (and sslcert=, sslkey= for client"
        " certificates). The password is scrubbed from log lines",
    )
    rollup_retention_days: int = Field(400, ge=1, description="How long the hourly trend roll-ups are kept")
    redis_timeout_s: float = Field(
        5.0, gt=0, description="A Redis call that gets no answer this long counts as an outage"
    )
    max_outage_s: float = Field(
        600.0, gt=0, description="A process waits this long for Redis or SQL to come back, then exits"
    )

    # Secured backends
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every Kafka client (worker, API, trainer, dispatcher, commands) connects: SASL_SSL"
        " is SASL sign-in over TLS; SSL is TLS alone",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="The SASL mechanism, with SASL_SSL or SASL_PLAINTEXT"
    )
    kafka_sasl_username: str = Field("", description="The SASL user, with SASL_SSL or SASL_PLAINTEXT")
    kafka_sasl_password: SecretStr = Field(
        SecretStr(""), description="The SASL user's password; never logged, shown as ********** in a repr"
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="PEM file of the CA(s) that signed the brokers' certificates; unset: the system's"
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="PEM client certificate, where the brokers ask for one (mutual TLS)"
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="PEM private key of kafka_ssl_certfile (unset: the key is in the certificate file)"
    )
    redis_ssl_ca_file: Path | None = Field(
        None,
        description="PEM file of the CA that signed Redis's certificate, for a rediss:// redis_url; unset:"
        " the system's",
    )

    # Stream processing
    max_batch: int = Field(
        256,
        ge=1,
        le=4096,
        description="Events per micro-batch at most. Under a backlog each batch pays its Kafka, Redis and SQL"
        " round trips once: 256 drained 462 events/s where 64 drained 385 (README)",
    )
    max_wait_ms: int = Field(
        5,
        ge=1,
        description="How long the worker gathers the next micro-batch once it has handed one to the model;"
        " the model meanwhile scores the batch before it, so the wait costs latency, not throughput."
        " Under a backlog batches fill to max_batch at once",
    )
    max_message_bytes: int = Field(64 * 1024, ge=1024)
    web_enabled: bool = False
    web_host: str = "127.0.0.1"
    web_port: int = 6066

    # Inference
    model_dir: Path | None = None
    models: str = Field(
        "",
        description="One bundle per language, LANG=FOLDER,... (en=/models/en,zh=/models/zh); the first"
        " is the default. Overrides model_dir",
        pattern=r"^\s*([a-z]{2,3}=[^,=]+(,\s*[a-z]{2,3}=[^,=]+)*)?\s*$",
    )
    backend: str = Field("auto", pattern="^(auto|onnx-int8|onnx-fp32|torch|torch-bf16)$")
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$")
    inference_batch: int = Field(32, ge=1)
    inference_token_budget: int | None = Field(
        None,
        ge=0,
        description="Padded tokens per model call (a long text then pads fewer short ones); 0 means no"
        " budget; unset means 2048 on CPU and none on CUDA",
    )
    max_length: int = Field(128, ge=8, le=512)
    threads: int = Field(
        0,
        ge=0,
        description="Cores for the model; 0: every core. ONNX runs that many one-thread calls side by"
        " side, torch that many threads in each call",
    )
    watchlist: Path | None = Field(None, description="YAML or CSV of companies: id, name, tickers, aliases")
    rules: Path | None = Field(None, description="Alert rules YAML; the shipped defaults when unset")
    receivers: Path | None = Field(
        None, description="Receivers YAML (slack, webhook, kafka); URLs via ${ENV}"
    )
    alert_tick_s: float = Field(
        5.0,
        gt=0,
        description="How often open alerts are re-evaluated (wall clock), or every rule (event time)",
    )
    alert_clock: Literal["wall", "event"] = Field(
        "wall",
        description="wall: check each batch as it comes; event: evaluate on the events' own clock, as a"
        " backtest does (to replay history through the worker)",
    )
    model_watch_s: float = Field(
        5.0, ge=0, description="How often the worker looks for a new bundle; 0: never"
    )

    # Labels and continuous learning
    topic_labels: str = "labels"
    topic_models: str = Field("models.updated", description="Promotions are announced here")
    registry_dir: Path | None = Field(None, description="Model bundles of the registry; <home>/models")
    frozen_percent: int = Field(10, ge=1, le=50, description="Share of labelled texts kept for evaluation")
    review_margin: float = Field(0.15, ge=0, le=1, description="Predictions less certain go to review")
    review_rate: float = Field(0.25, ge=0, le=1, description="Share of those uncertain ones queued")
    train_cron: str = Field("0 2 * * *", description="When the nightly fine-tuning runs (crontab, UTC)")
    min_new_labels: int = Field(200, ge=1, description="The nightly job skips with fewer new labels")
    replay_ratio: float = Field(1.0, ge=0, description="Older labels replayed per new label")
    gate_tolerance: float = Field(0.01, ge=0, description="How far one head's macro-F1 may drop")
    night_epochs: int = Field(2, ge=1)
    night_lr: float = Field(3e-5, gt=0)
    base_model: Path | None = Field(None, description="Encoder folder for a first model; the packaged one")
    trainer_lease_s: float = Field(
        120.0, ge=3, description="The trainer's lock lapses this long after its last heartbeat"
    )

    # HTTP API and metrics
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_body_limit_bytes: int = Field(
        1 * 2**20, ge=1024, description="Largest request body of a JSON route; larger ones get 413 unread"
    )
    api_import_limit_bytes: int = Field(
        20 * 2**20,
        ge=1024,
        description="Largest body of a label upload: a file (/labels/import) or a JSON batch (/labels)",
    )
    api_docs: bool = Field(True, description="Serve /docs and /openapi.json (to signed-in accounts only)")
    trusted_proxies: str = Field(
        "",
        description="Addresses or networks (comma-separated) of reverse proxies whose X-Forwarded-For is"
        " believed; empty: the client address is the socket's",
    )
    login_free_failures: int = Field(
        5, ge=1, description="Failed logins per account or address before each further try is delayed"
    )
    login_max_delay_s: float = Field(
        120.0, gt=0, description="The longest delay failed logins impose; the owner is never locked out"
    )
    metrics_port: int = Field(0, ge=0, description="Prometheus port of a worker or dispatcher; 0: off")

    shared_data: Path = Field(Path("../shared/data"), description="Labelled data sets beside the project")

    log_level: str = "INFO"
    log_json: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_path = init_settings().get("config") or env_settings().get("config")
        yaml_source = YamlSource(settings_cls, Path(config_path) if config_path else None)
        return init_settings, env_settings, yaml_source

    @model_validator(mode="after")
    def _kafka_security_is_whole(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()):
            raise ValueError(
                f"kafka_security_protocol={self.kafka_security_protocol} needs kafka_sasl_username and"
                " kafka_sasl_password"
            )
        tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        given = [
            name
            for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
            if getattr(self, name) is not None
        ]
        if given and not tls:
            raise ValueError(
                f"{', '.join(given)} given, but kafka_security_protocol={self.kafka_security_protocol}"
                " does not use TLS (SSL or SASL_SSL)"
            )
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError("kafka_ssl_keyfile needs kafka_ssl_certfile")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'finsentry.db'}"

    @property
    def serving_model_dir(self) -> Path:
        """The bundle workers serve: with a registry, the link that promotion moves."""
        return self.model_dir or self.home / "models" / "current"

    @property
    def language_models(self) -> dict[str, Path]:
        """The `models` setting as {language: folder}, in order; empty when one model_dir serves all."""
        models: dict[str, Path] = {}
        for part in filter(None, (p.strip() for p in self.models.split(","))):
            language, _, folder = part.partition("=")
            if language in models:
                raise ValueError(f"FINSENTRY_MODELS: language {language!r} is given twice")
            models[language] = Path(folder.strip())
        return models

    @property
    def effective_registry_dir(self) -> Path:
        return self.registry_dir or self.home / "models"

    @property
    def input_topics(self) -> list[str]:
        return [self.topic_news, self.topic_comments]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
