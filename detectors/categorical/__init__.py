"""Drift tests and distances on categorical features (strings or integers)."""
