"""Strawberry schema extensions of our own, one per file; Strawberry's built-ins are preferred."""
