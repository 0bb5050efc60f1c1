"""Alembic's entry: runs the migrations on the connection `foundation.db.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from foundation.db import Base

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    # Services start together; the first to get here migrates, the others then find nothing to do.
    connection.execute(text("SELECT pg_advisory_xact_lock(7267341)"))
# The migrations say every change themselves; the metadata only matters to autogenerate and the parity
# test, which import the domain packages' tables (the foundation itself knows none of them).
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
