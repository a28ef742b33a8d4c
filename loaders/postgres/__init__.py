"""Loaders whose batch function is one SQL statement against PostgreSQL."""
