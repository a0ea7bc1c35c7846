"""Sent once the transaction that raised it has committed: `alert_raised` (with `alert`), which
notifications/tasks.py sends out by e-mail, so that services never import tasks."""

from django.dispatch import Signal

alert_raised = Signal()
