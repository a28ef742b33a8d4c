"""Embedders: text to vectors, with a real sentence-embedding model loaded offline."""
