"""The SQL engine factory on both databases the project supports (SQLite file and real PostgreSQL)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select

from foundation.db import make_engine


def test_engine_round_trip_and_concurrent_writers(database_url: str) -> None:
    engine = make_engine(database_url)
    metadata = MetaData()
    table = Table("roundtrip", metadata, Column("id", Integer, primary_key=True), Column("text", String(200)))
    metadata.drop_all(engine)
    metadata.create_all(engine)

    def write(start: int) -> None:
        with engine.begin() as conn:
            conn.execute(
                insert(table), [{"id": i, "text": f"平安银行 {i}"} for i in range(start, start + 100)]
            )

    writers = [threading.Thread(target=write, args=(n * 100,)) for n in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 400
        assert conn.execute(select(table.c.text).where(table.c.id == 7)).scalar_one() == "平安银行 7"
    assert engine.dialect.name == ("sqlite" if database_url.startswith("sqlite") else "postgresql")
    metadata.drop_all(engine)
    engine.dispose()


def test_migrations_make_exactly_the_tables_the_code_declares(sql_engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import accounts.tables  # noqa: F401  (the imports register every table)
    import alerts.store  # noqa: F401
    import labels.tables  # noqa: F401
    import training.lock
    import training.registry  # noqa: F401
    import trends.tables  # noqa: F401
    from foundation.db import Base, migrate

    with sql_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], "a model changed without a migration: alembic revision --autogenerate"
    migrate(sql_engine)  # a second run finds nothing to do


def test_sqlite_writes_a_write_ahead_log_without_an_fsync_per_commit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'finsentry.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
