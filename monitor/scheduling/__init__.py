"""Scheduling: what runs by itself, and in which process.

- :mod:`.leader` elects one process among all sharing the database;
- :mod:`.scheduler` is the leader's APScheduler: a job per monitor, alert delivery, refreshes;
- :mod:`.retention` purges telemetry older than the retention period.
"""
