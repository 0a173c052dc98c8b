"""Alert rules, alert lifecycle and delivery channels (e-mail, webhook, Alertmanager).

Empty until the retraining-alerts issue (#7): the folder exists so the layout is fixed from day one.
"""
