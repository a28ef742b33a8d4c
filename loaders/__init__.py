"""Per-request DataLoaders: where batching happens. One subpackage per store."""
