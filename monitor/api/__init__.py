"""HTTP routes, one router per file, all under ``/api/v1`` except the health probes."""
