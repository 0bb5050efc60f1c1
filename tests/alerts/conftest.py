from __future__ import annotations

import pytest
from sqlalchemy import Engine

from alerts.store import Base
from finsentry.db import make_engine


@pytest.fixture()
def engine(database_url: str) -> Engine:
    """Empty alert tables, on SQLite and on PostgreSQL."""
    engine = make_engine(database_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    return engine
