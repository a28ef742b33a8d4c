"""Campaign events from commit to subscriber: the outbox relay, stream ids, and the per-process
fan-out that lets one Redis reader serve every subscriber of a tenant."""
