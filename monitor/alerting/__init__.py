"""Alerting: why an alert fired, and how its notices leave.

Read in the order of the flow:

- :mod:`.lifecycle` checks a model's alert rules after its runs; fires, re-notifies and
  resolves alerts; acknowledge and silence. *Why did this alert fire?* starts here.
- :mod:`.escalation` decides when a firing alert got materially worse (notify at once, and
  say what changed since the last notice); :mod:`.notices` builds what a notice says.
- :mod:`.delivery` sends the outbox the lifecycle writes (e-mail, webhook, Alertmanager), at
  least once, each channel on its own thread.
- :mod:`.report_links` signs the report links that e-mails carry.

The rules themselves and the channels are the ``alerts`` package; this folder is where the
service keeps their state in the database.
"""
