"""Alembic's entry: runs the migrations on the connection `finsentry.db.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

import alerts.store  # noqa: F401  (the imports register every table on Base.metadata)
import labels.tables  # noqa: F401
import training.lock
import training.registry  # noqa: F401
from finsentry.db import Base

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    # Services start together; the first to get here migrates, the others then find nothing to do.
    connection.execute(text("SELECT pg_advisory_xact_lock(7267341)"))
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
