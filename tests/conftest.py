"""The test harness: real Kafka, Redis and PostgreSQL on free loopback ports, and tiny random models.

Each service is started once per session and stopped afterwards, or taken as running when its URL
is given: FINSENTRY_TEST_KAFKA (host:port), FINSENTRY_TEST_REDIS, FINSENTRY_TEST_POSTGRES (SQLAlchemy URL).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from finsentry.services.kafka import KafkaServer
from finsentry.services.postgres import PostgresServer
from finsentry.services.redis import RedisServer
from foundation.settings import DEFAULT_HOME

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("FINSENTRY_TEST_KAFKA"):
        yield url
        return
    server = KafkaServer(DEFAULT_HOME, tmp_path_factory.mktemp("kafka"), heap="768m")
    server.start()
    yield server.bootstrap
    server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("FINSENTRY_TEST_REDIS"):
        yield url
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if url := os.environ.get("FINSENTRY_TEST_POSTGRES"):
        yield url
        return
    # Not under pytest's private temp folder: the server runs as the `postgres` user when we are root.
    data_dir = Path(tempfile.mkdtemp(prefix="finsentry-pg-"))
    server = PostgresServer(data_dir)
    server.start()
    yield server.url
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'finsentry.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture()
def sql_engine(database_url: str) -> Engine:
    """An empty database at the newest schema, made by the migrations, on SQLite and on PostgreSQL."""
    from sqlalchemy import MetaData

    from foundation.db import make_engine, migrate

    engine = make_engine(database_url)
    existing = MetaData()
    existing.reflect(engine)
    existing.drop_all(engine)
    migrate(engine)
    return engine


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised two-layer BERT with both heads, exported like a real bundle."""
    from tests.tiny_model import build_tiny_bundle

    return build_tiny_bundle(tmp_path_factory.mktemp("models") / "tiny", seed=1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"labelled data not found at {SHARED_DATA} (the shared data folder beside the repository)"
        )
    return SHARED_DATA
