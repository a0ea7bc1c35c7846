"""Commit an import's batches in order, one at a time, beside the reading of the next."""

import sys
from concurrent.futures import ThreadPoolExecutor

from django.db import connection
from django.utils import translation


class BatchCommitter:
    """Commit batches in order, one at a time.

    On PostgreSQL, outside a transaction (as in a worker), the commits run in a second thread
    with its own connection, so that the database works on one batch while the next is read and
    validated: the two take about as long, and there are two cores. Inside a transaction (as in
    tests) a second connection could not see the caller's rows, so the commits run inline.

    A commit runs in the language active where it was submitted (the import's starter's), as
    the reasons it writes (a duplicate, a row that could not be stored) are read by them.
    """

    # The commit thread waits on the database, then needs the interpreter lock back for a moment,
    # many times a batch; at the default 5 ms switch interval the reading thread keeps it so long
    # that the two barely overlap (measured: 27 s instead of 19 s for a million rows).
    SWITCH_INTERVAL = 0.0005

    def __init__(self):
        threaded = connection.vendor == "postgresql" and not connection.in_atomic_block
        self.executor = ThreadPoolExecutor(1, "import-commit") if threaded else None
        self.pending = None
        self.switch_interval = sys.getswitchinterval()

    def submit(self, commit, *args, **kwargs) -> None:
        self.wait()
        if self.executor is None:
            commit(*args, **kwargs)
        else:
            language = translation.get_language()
            self.pending = self.executor.submit(_in_language, language, commit, *args, **kwargs)

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()  # re-raises what the commit raised

    def __enter__(self):
        if self.executor is not None:
            sys.setswitchinterval(self.SWITCH_INTERVAL)
        return self

    def __exit__(self, *exc_info):
        try:
            self.wait()
        finally:
            if self.executor is not None:
                self.executor.submit(lambda: connection.close()).result()
                self.executor.shutdown()
                sys.setswitchinterval(self.switch_interval)


def _in_language(language, commit, *args, **kwargs):
    with translation.override(language):
        return commit(*args, **kwargs)
