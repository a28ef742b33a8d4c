"""Vector indexes: where embeddings live for semantic search (pgvector embedded, Weaviate)."""
