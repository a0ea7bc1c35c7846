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


# How the language of a staff member is found outside a request, for what a worker writes to
# them (an import's or an assignment's report). The notifications app, which remembers each
# staff member's language, installs its reader in ready() (imports may not import it); until
# then, the project's default.
staff_language_readers: list = []


def staff_language(user) -> str:
    """Return the language to write to `user` in (see staff_language_readers)."""
    from django.conf import settings

    for read in staff_language_readers:
        return read(user)
    return settings.LANGUAGE_CODE
