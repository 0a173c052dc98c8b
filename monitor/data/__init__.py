"""Telemetry and reference data as compact Arrow tables: validation, encoding, decoding.

Every accepted batch and every reference set becomes one Arrow table with a canonical layout
(see :mod:`monitor.data.layout`), stored as one compressed Arrow IPC blob, never as one row
per feature value.
"""
