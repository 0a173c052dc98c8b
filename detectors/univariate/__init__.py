"""Univariate drift tests and distances on numeric features, batched over all features."""
