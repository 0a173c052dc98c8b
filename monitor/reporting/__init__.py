"""Reporting: the HTML drift report of one run (Tidewatch's section, plots, Evidently's)."""
