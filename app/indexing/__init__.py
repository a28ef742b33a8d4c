"""Keeping the vector index in step with PostgreSQL: what each row embeds, the outbox-driven
indexer, and the reconciler that finds and repairs drift."""
