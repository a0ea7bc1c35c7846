import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import Phase
from hypothesis import settings as hypothesis_settings
from hypothesis.database import DirectoryBasedExampleDatabase

from promo_project.celery import app as celery_app
from tests.factories import NOW, make_manager, make_viewer
from tests.worker import PrivateRedis, Worker, point_app_at, redis_url, require_services, worker_env

# Hypothesis keeps the examples it found under var/ (ignored by git), not in the work tree.
hypothesis_settings.register_profile(
    "promo",
    database=DirectoryBasedExampleDatabase(
        Path(__file__).resolve().parent.parent / "var" / "hypothesis"
    ),
)
# `make test-thorough` runs the property tests with a hundred times the examples.
hypothesis_settings.register_profile(
    "thorough", parent=hypothesis_settings.get_profile("promo"), max_examples=10_000, deadline=None
)
# tools/bug_bank.py asks only whether a test fails, not for the shortest failing example; and
# each bug is judged on its own, not on examples another bug's run saved.
hypothesis_settings.register_profile(
    "bug-bank",
    parent=hypothesis_settings.get_profile("promo"),
    database=None,
    phases=[Phase.explicit, Phase.generate],
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "promo"))

NEEDS_POSTGRESQL = ("postgresql", "integration", "e2e")


def pytest_collection_modifyitems(config, items):
    """Skip the tests that need PostgreSQL when the tests run on another database (in CI, where
    PostgreSQL is a given, such a run deselects them with -m instead)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason=f"needs PostgreSQL; the database is {connection.vendor}")
    for item in items:
        if any(item.get_closest_marker(name) for name in NEEDS_POSTGRESQL):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _default_language_after_each_test():
    """A request in Russian leaves the thread's language Russian (LocaleMiddleware activates it and
    nothing resets it in tests): the next test starts in the default language again."""
    yield
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def _celery_in_process(request, settings, tmp_path):
    """Run tasks in the test's process, except in tests that start a real worker."""
    settings.MEDIA_ROOT = tmp_path / "media"
    if request.node.get_closest_marker("integration"):
        yield
        return
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False


# Longer than any one test of a job takes on a busy two-core machine (the slowest, a few seconds).
STUCK_SECONDS = 30
# The alarm a running test armed (fails_if_stuck): the handler and the alarm it replaced.
_stuck_guard: dict = {}


@pytest.fixture
def fails_if_stuck():
    """Fail the test if it runs longer than STUCK_SECONDS: a job whose slices wait for each
    other forever (a commit order broken) fails its test instead of hanging the run (and a
    mutation run's timeout, ten times the tests' time, for each such mutant)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stuck(signum, frame):
        signal.alarm(STUCK_SECONDS)  # again, should the cleanup hang too
        if _stuck_guard.get("cleaning"):
            if not _stuck_guard.pop("ended_others", False):
                # The stuck job's threads hold locks the database's cleanup waits for: end
                # their connections, so that the cleanup goes on and leaves the database empty.
                _stuck_guard["ended_others"] = _end_other_connections()
                return
            sys.stderr.write("\nthe cleanup after a stuck test is stuck too: ending pytest\n")
            sys.stderr.flush()
            os._exit(1)
        pytest.fail(f"still running after {STUCK_SECONDS} s: stuck")

    _stuck_guard.update(
        before=signal.signal(signal.SIGALRM, stuck),
        outer=signal.alarm(STUCK_SECONDS),  # a limit set around the run, restored after
        started=time.monotonic(),
        cleaning=False,
    )
    yield
    # The alarm goes on through the rest of the test's teardown (the database's).
    _stuck_guard["cleaning"] = True
    signal.alarm(STUCK_SECONDS)


def _end_other_connections() -> bool:
    """End the other connections to the test database (a stuck test's threads'); return
    whether the database is PostgreSQL (elsewhere a test runs on one connection)."""
    import psycopg
    from django.db import connection

    if connection.vendor != "postgresql":
        return False
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        autocommit=True,
    ) as own:
        own.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND pid <> %s",
            [connection.connection.info.backend_pid],
        )
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    if _stuck_guard:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, _stuck_guard["before"])
        if _stuck_guard["outer"]:
            elapsed = round(time.monotonic() - _stuck_guard["started"])
            signal.alarm(max(1, _stuck_guard["outer"] - elapsed))
        _stuck_guard.clear()


@pytest.fixture
def frozen(monkeypatch):
    """The services' clock stopped at NOW, so that a boundary can be met to the microsecond."""
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


@pytest.fixture
def on_commit_at_once(monkeypatch):
    """Run on-commit callbacks (a job's enqueueing; tasks run eagerly here) at once."""
    from django.db import transaction

    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())


@pytest.fixture
def fresh_rate_limits(monkeypatch):
    """The API's rate limits as if no call had been made yet, their fixed windows (a minute, an
    hour, a day) each just begun, so that none rolls over while a test counts in it."""
    import time
    from types import SimpleNamespace

    from django.core.cache import cache, caches

    from pools import guessing
    from pools.shared_cache import shared_reset

    cache.clear()
    caches["local"].clear()
    shared_reset()
    started = time.time()
    day_start = started // 86_400 * 86_400
    monkeypatch.setattr(
        guessing, "time", SimpleNamespace(time=lambda: day_start + 1 + time.time() - started)
    )


@pytest.fixture
def manager(db):
    return make_manager()


@pytest.fixture
def viewer(db):
    return make_viewer()


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def broker_url():
    """The local Redis, emptied, as the broker of this process and of the workers started."""
    import redis

    url = require_services()
    redis.Redis.from_url(url).flushdb()
    point_app_at(url)
    yield url
    point_app_at(url)


@pytest.fixture
def worker_factory(broker_url, tmp_path):
    """Start real Celery workers on the test's database; settings overrides as keywords."""
    workers = []

    def start(**overrides):
        env = worker_env(broker_url, **overrides)
        worker = Worker(env, tmp_path / "worker.log").start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of the test's own, as the broker of this process and of the workers
    started, that the test may stop and start."""
    require_services()
    redis = PrivateRedis(tmp_path).start()
    point_app_at(redis.url())
    yield redis
    redis.stop()
    point_app_at(redis_url())
