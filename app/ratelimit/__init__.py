"""Per-tenant and per-client buckets in Redis, charged with what operations cost."""
