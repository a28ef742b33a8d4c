"""PostgreSQL: the source of truth for every relational row."""
