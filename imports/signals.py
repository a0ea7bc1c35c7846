"""What the imports app announces, each sent once the transaction that caused it has committed.

`import_finished` (with `job`): an import ended, whatever its
outcome; the notifications app tells the person who started it.

It is sent robustly: a receiver that fails (the broker is down) is logged and cannot change
the import's outcome. A finished import's notice is found again later by the notifications
app's outbox (it is due while `finished_notice_sent_at` is empty). Handing queued jobs to a
worker is pools.jobs' (job_enqueue_on_commit).
"""

from django.db import transaction
from django.dispatch import Signal

import_finished = Signal()


def import_finished_on_commit(job) -> None:
    from .models import Import

    transaction.on_commit(lambda: import_finished.send(sender=Import, job=job), robust=True)


# A refill was due but the 1% capacity rule stopped it (imports/refill.py); sent with `job` (the
# failed import that says why). The notifications app e-mails the pool's subscribers.
refill_stopped = Signal()


def refill_stopped_on_commit(job) -> None:
    from .models import Import

    transaction.on_commit(lambda: refill_stopped.send(sender=Import, job=job), robust=True)
