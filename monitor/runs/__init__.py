"""Runs: a window of telemetry becomes a stored detection run.

- :mod:`.windows` says which windows are due and which records each one holds;
- :mod:`.monitoring` runs a monitor's due windows (and backfills), one transaction each;
- :mod:`.pipeline` computes one window against the fitted reference: drift tests, then
- :mod:`.quality` (data quality) and :mod:`.performance` (realized and estimated performance),
- :mod:`.window_stats` (class mix, confidence) stored with the run;
- :mod:`.status` reads each model's status now, and since when;
- :mod:`.run_log` logs one line per finished run.

After runs, :mod:`monitor.cycle` hands them to :mod:`monitor.alerting`.
"""
