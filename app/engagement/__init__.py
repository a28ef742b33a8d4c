"""Keeping engagement counters in Redis equal to the committed ENGAGEMENT events: the
reconciler that measures and repairs their drift (ADR 0019)."""
