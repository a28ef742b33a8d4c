"""Loaders whose batch function is one pipelined round trip to Redis."""
