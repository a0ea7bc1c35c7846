"""For race tests: tell when another session is blocked on a lock this thread's session holds,
so that a test can hold a critical section open exactly until the second party is either
inside it too (no lock) or waiting at its door (the lock), and no longer."""

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

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


# Two parties, one holding its lock: every pair of writers on one code or customer


@dataclass
class Party:
    """One side of a race: `call` runs on its own connection; `at` is a piece of the SQL of the
    statement that takes its lock (or, in a copy with the lock removed, reads the row): the
    party stops right after that statement, its transaction still open."""

    name: str
    call: Callable[[], object]
    at: str


@dataclass
class Interleaving:
    # What each party's call returned, or the error it raised, by name.
    results: dict
    # How the first party's hold ended: the second "waited" for one of its locks, was "inside"
    # too (past its own statement: no lock between them), or "finished" without either; or
    # "timeout".
    how: str


def interleave(first: Party, second: Party, timeout: float = 5) -> Interleaving:
    """Run `first` up to its lock statement, then start `second` (a barrier between them), and
    hold `first` there until `second` waits for one of its locks (pg_blocking_pids), reaches its
    own lock statement or finishes; then let `first` go on. A second party that got inside waits
    there until `first` finishes or waits for it, so that both read before either writes.
    """
    barrier = threading.Barrier(2, timeout=timeout)
    pids: dict[str, int] = {}
    reached = {first.name: threading.Event(), second.name: threading.Event()}
    done = {first.name: threading.Event(), second.name: threading.Event()}
    results: dict = {}
    how = ["never held"]

    def blocked(waiter: str, holder: str, probe) -> bool:
        if waiter not in pids:
            return False
        with probe.cursor() as cursor:
            cursor.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [pids[holder], pids[waiter]])
            return cursor.fetchone()[0]

    def hold(me: str, other: str, until_inside: bool) -> str:
        deadline = time.monotonic() + timeout
        probe = connections.create_connection("default")
        try:
            while time.monotonic() < deadline:
                if done[other].is_set():
                    return "finished"
                if until_inside and reached[other].is_set():
                    return "inside"
                if blocked(other, me, probe):
                    return "waited"
                time.sleep(0.005)
            return "timeout"
        finally:
            probe.close()

    def run(party: Party, other: Party):
        connection.ensure_connection()
        pids[party.name] = connection.connection.info.backend_pid
        is_first = party is first

        def at_lock(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            if party.at in sql and not reached[party.name].is_set():
                reached[party.name].set()
                if is_first:
                    barrier.wait()
                    how[0] = hold(party.name, other.name, until_inside=True)
                else:
                    hold(party.name, other.name, until_inside=False)
            return result

        try:
            if not is_first:
                barrier.wait()
            with connection.execute_wrapper(at_lock):
                results[party.name] = party.call()
        except Exception as error:  # noqa: BLE001  (asserted by the test)
            results[party.name] = error
        finally:
            if is_first and not reached[party.name].is_set():
                barrier.abort()  # the second party would wait for nothing
            done[party.name].set()
            connection.close()

    threads = [
        threading.Thread(target=run, args=(first, second)),
        threading.Thread(target=run, args=(second, first)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Interleaving(results, how[0])


@contextmanager
def row_held_elsewhere(select_for_update: str, params=()):
    """Hold the row `select_for_update` locks in a second connection, as a transaction in
    progress holds it, while the test's connection gives up after waiting 3 s for any lock (so
    that waiting for it is an error, not a slow pass)."""
    holder = connections.create_connection("default")
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute(select_for_update, params)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = 0")
    finally:
        holder.rollback()
        holder.close()
