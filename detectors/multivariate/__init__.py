"""Multivariate drift tests: one verdict over all columns (embeddings, image statistics)."""
