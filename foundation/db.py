"""SQL through SQLAlchemy 2: a SQLite file by default, PostgreSQL when FINSENTRY_DATABASE_URL names one.

Every table derives from `Base`; its schema is made and upgraded by the Alembic migrations in
`foundation/migrations/`, which `migrate` applies (each service calls it at start; it is safe to run at once).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
READ_ONLY_OPTION = "finsentry_read_only"


class Base(DeclarativeBase):
    # Times are naive UTC in every database, so SQLite and PostgreSQL compare them alike.
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[dict[str, Any]]: JSON,
        datetime: DateTime(),
    }


def migrate(engine: Engine) -> None:
    """Brings the database to the newest schema (a no-op when it is there already)."""
    # Alembic narrates every step (from its import on) at INFO; a service start is not the place for it.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _: Any) -> None:
            # WAL lets the API read while a worker writes; foreign keys are off in SQLite by default.
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # No fsync per commit (0.7 ms each here, and the worker commits per micro-batch): a commit
            # survives a crash of the process, and the last ones may roll back on a power loss, the
            # same promise a single Kafka broker makes for its page cache. PostgreSQL for more.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            connection.isolation_level = None  # transactions are begun below, not by the driver

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            if connection.get_execution_options().get(READ_ONLY_OPTION):
                connection.exec_driver_sql("BEGIN")  # WAL: a reader neither waits for nor blocks a writer
                return
            # Take the write lock when the transaction starts, not at its first write: two processes
            # then never both read a row and both act on what they read (SQLite has no FOR UPDATE).
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def reader(engine: Engine) -> Engine:
    """The same database, for transactions that only read. On SQLite they skip the write lock that
    every other transaction takes at its start, so polls and charts never hold up a worker's batch."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def open_database(url: str) -> Engine:
    """An engine on a database at the newest schema: what every service starts with."""
    engine = make_engine(url)
    migrate(engine)
    return engine
