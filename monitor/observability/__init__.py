"""What Tidewatch tells Prometheus: its own counters and the detection results in storage.

``service`` holds this process's counters and histograms (ingest, detection runs, scheduler,
alert deliveries); ``results`` is a collector that reads the latest results from the database
at scrape time. ``registry`` puts both behind one ``collect()`` for ``/metrics``.
``access_log`` keeps credentials (report-link tokens) out of uvicorn's access log; ``logs``
sets up every process's log lines (text or JSON, libraries quiet, fields on event lines).
"""
