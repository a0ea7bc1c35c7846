"""For race tests: tell when another session is blocked on a lock this thread's session holds,
so that a test can hold a critical section open exactly until the second party is either
inside it too (no lock) or waiting at its door (the lock), and no longer."""

import threading
import time

from django.db import connection, connections


def someone_waits_for_me() -> bool:
    """Return True if another session waits for a lock held by this thread's session (another
    test's leftover session, blocked on something else, does not count)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (me,) = cursor.fetchone()
    probe = connections.create_connection("default")
    try:
        with probe.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                [me],
            )
            return cursor.fetchone()[0] > 0
    finally:
        probe.close()


def wait_inside_until_the_other_arrives(inside: list, timeout: float = 30) -> None:
    """In the critical section: wait until the other party is inside too (len(inside) == 2)
    or blocked on this session's lock."""
    deadline = time.monotonic() + timeout
    while len(inside) < 2 and not someone_waits_for_me() and time.monotonic() < deadline:
        time.sleep(0.01)


def in_thread(target, results: dict, name: str) -> threading.Thread:
    """A thread (not started) that calls target on its own connection and puts what it returns,
    or the error it raises, in results[name]."""

    def run():
        try:
            results[name] = target()
        except Exception as error:  # noqa: BLE001  (asserted by the test)
            results[name] = error
        finally:
            connection.close()

    return threading.Thread(target=run)
