"""Loaders whose batch function is one call to the embedder or the vector index."""
