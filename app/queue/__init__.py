"""The agents' task queue, kept in Redis (ADR 0023)."""
