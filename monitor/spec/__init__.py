"""What a model declares (:mod:`.model`: features, output, monitors, alert rules) and the
monitors file an operator keeps in version control (:mod:`.monitor_file`); :mod:`.errors`
words a validation error for a person."""
