"""What the imports app announces, each sent once the transaction that caused it has committed.

`import_queued` (with `import_id`): a job waits for a worker; imports/tasks.py enqueues it, so
services never import tasks. `import_finished` (with `job`): an import ended, whatever its
outcome; the notifications app tells the person who started it.

Both are sent robustly: a receiver that fails (the broker is down) is logged and cannot change
the import's outcome. What must still happen is found again later by a periodic task: a queued
import by imports.engine.imports_requeue_lost, a finished one's notice by the notifications
app's outbox (its notice is due while `finished_notice_sent_at` is empty).
"""

from django.db import transaction
from django.dispatch import Signal

import_queued = Signal()
import_finished = Signal()


def import_queued_on_commit(import_id: int) -> None:
    from .models import Import

    transaction.on_commit(
        lambda: import_queued.send(sender=Import, import_id=import_id), robust=True
    )


def import_finished_on_commit(job) -> None:
    from .models import Import

    transaction.on_commit(lambda: import_finished.send(sender=Import, job=job), robust=True)


# An assignment (a customer list to give codes to) waits for a worker; sent with
# `assignment_id`. imports/tasks.py enqueues it.
assignment_queued = Signal()


def assignment_queued_on_commit(assignment_id: int) -> None:
    from .models import Assignment

    transaction.on_commit(
        lambda: assignment_queued.send(sender=Assignment, assignment_id=assignment_id),
        robust=True,
    )


# A refill was due but the 1% capacity rule stopped it (imports/refill.py); sent with `job` (the
# failed import that says why). The notifications app e-mails the pool's subscribers.
refill_stopped = Signal()


def refill_stopped_on_commit(job) -> None:
    from .models import Import

    transaction.on_commit(lambda: refill_stopped.send(sender=Import, job=job), robust=True)
