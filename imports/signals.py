"""What the imports app announces, each sent once the transaction that caused it has committed.

`import_queued` (with `import_id`): a job waits for a worker; imports/tasks.py enqueues it, so
services never import tasks. `import_finished` (with `job`): an import ended, whatever its
outcome; the notifications app tells the person who started it.
"""

from django.db import transaction
from django.dispatch import Signal

import_queued = Signal()
import_finished = Signal()


def import_queued_on_commit(import_id: int) -> None:
    from .models import Import

    transaction.on_commit(lambda: import_queued.send(sender=Import, import_id=import_id))


def import_finished_on_commit(job) -> None:
    from .models import Import

    transaction.on_commit(lambda: import_finished.send(sender=Import, job=job))
