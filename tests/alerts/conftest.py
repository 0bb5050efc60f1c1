from __future__ import annotations

import pytest
from sqlalchemy import Engine


@pytest.fixture()
def engine(sql_engine: Engine) -> Engine:
    """Empty alert tables, on SQLite and on PostgreSQL."""
    return sql_engine
