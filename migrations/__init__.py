"""Alembic migrations: the only way the relational schema changes."""
