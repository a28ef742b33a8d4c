"""Redis: counters, cache, rate limits, queues and event fan-out."""
