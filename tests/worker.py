"""A real Celery worker in a subprocess, on the local Redis and the test's PostgreSQL database."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from promo_project.celery import app as celery_app

READY_TIMEOUT = 60


def redis_url() -> str:
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        return settings.CELERY_BROKER_URL
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def require_services() -> str:
    """Skip (or, in CI, fail) when PostgreSQL or Redis is not what the tests run on."""
    import redis

    problem = None
    if connection.vendor != "postgresql":
        problem = "needs DATABASE_URL to point at PostgreSQL"
    else:
        try:
            redis.Redis.from_url(redis_url(), socket_connect_timeout=2).ping()
        except redis.RedisError as error:
            problem = f"needs Redis at {redis_url()}: {error}"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return redis_url()


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Worker:
    """A worker process; `beat` runs the periodic tasks in it too, `prefix` runs it under a
    command (`ip netns exec NAME`, to put it in a network namespace)."""

    def __init__(
        self,
        env: dict,
        log_path: Path,
        pool: str = "prefork",
        beat: bool = False,
        prefix: tuple = (),
    ):
        self.env = env
        self.log_path = log_path
        self.pool = pool
        self.beat = beat
        self.prefix = tuple(prefix)
        self.process = None

    def start(self):
        log = open(self.log_path, "a")  # noqa: SIM115  (kept open for the subprocess)
        beat = ["--beat", f"--schedule={self.log_path.with_suffix('.beat')}"] if self.beat else []
        self.process = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "celery",
                "-A",
                "promo_project",
                "worker",
                f"--pool={self.pool}",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"test-{time.monotonic_ns()}@%h",
                *beat,
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        start = self.log_path.read_text().count(" ready.")
        try:
            wait_for(
                lambda: self.log_path.read_text().count(" ready.") > start,
                timeout=READY_TIMEOUT,
                what=f"the worker to start; log: {self.log_path}",
            )
        except AssertionError:
            # Not left behind to take the next run's tasks with this run's settings.
            self.stop()
            raise
        return self

    def child_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]

    def kill(self):
        """SIGKILL the whole worker, as an OOM killer or a lost machine would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def peak_rss(self) -> int:
        """Return the worker process's peak resident memory so far, in bytes.

        Read from /proc, not from wait4's rusage: that one also counts the parent's memory,
        which the child shares between fork and exec.
        """
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kilobytes = next(
            line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")
        )
        return int(kilobytes) * 1024

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def worker_env(broker_url: str, **overrides) -> dict:
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER'] or ''}{':' + db['PASSWORD'] if db['PASSWORD'] else ''}"
        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PROMO_VAR_DIR": str(Path(settings.MEDIA_ROOT).parent / "var"),
        **{key: str(value) for key, value in overrides.items()},
    }


def point_app_at(broker_url: str):
    """Make this process send tasks to the worker's broker."""
    celery_app.close()
    # close() drops the connection pool, not the producer pool cached beside it.
    celery_app.amqp._producer_pool = None
    celery_app.conf.broker_url = broker_url
    # Celery prefers the CELERY_BROKER_URL environment variable to broker_url; the write and read
    # URLs are taken as set.
    celery_app.conf.broker_write_url = broker_url
    celery_app.conf.broker_read_url = broker_url
    celery_app.conf.broker_transport_options = {"visibility_timeout": 3600}
    celery_app.conf.task_always_eager = False


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own, without persistence, that the test can stop and start
    (the shared one must stay up for others). Listens on 127.0.0.1 and the `bind` addresses."""

    def __init__(self, directory: Path, bind: tuple = ()):
        self.directory = directory
        self.bind = ("127.0.0.1", *bind)
        self.port = free_port()
        self.process = None

    def url(self, host: str = "127.0.0.1") -> str:
        return f"redis://{host}:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                *self.bind,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        def answers():
            try:
                return redis.Redis.from_url(self.url(), socket_connect_timeout=1).ping()
            except redis.RedisError:
                return False

        wait_for(answers, timeout=20, what=f"redis-server on port {self.port}")
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A throw-away PostgreSQL cluster of the test's own, which the test can restart (the shared
    one must stay up for others), with a database `promo`. Listens on 127.0.0.1 and the `listen`
    addresses, and trusts the `trust` networks besides. Needs root and the server programs."""

    def __init__(self, listen: tuple = (), trust: tuple = ()):
        if os.geteuid() != 0 or not (PG_BIN / "initdb").exists():
            pytest.skip(f"needs root and PostgreSQL's server programs in {PG_BIN}")
        import shutil
        import tempfile

        self.directory = Path(tempfile.mkdtemp(prefix="promo-pg-"))
        shutil.chown(self.directory, "postgres")
        self.data = self.directory / "data"
        self.listen = ("127.0.0.1", *listen)
        self.trust = trust
        self.port = PrivateRedis(self.directory).port  # a free port
        self.as_postgres = ["runuser", "-u", "postgres", "--"]

    def _pg_ctl(self, *args):
        subprocess.run(
            [*self.as_postgres, PG_BIN / "pg_ctl", "-D", self.data, *args],
            check=True,
            capture_output=True,
        )

    def start(self):
        import psycopg

        if not self.data.exists():
            subprocess.run(
                [*self.as_postgres, PG_BIN / "initdb", "-D", self.data, "-A", "trust",
                 "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
                check=True, capture_output=True,
            )  # fmt: skip
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.writelines(f"host all all {network} trust\n" for network in self.trust)
            fresh = True
        else:
            fresh = False
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses='{','.join(self.listen)}' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._pg_ctl("-o", options, "-l", self.directory / "log", "-w", "start")
        if fresh:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user="postgres", autocommit=True
            ) as db:
                db.execute("CREATE DATABASE promo")
        return self

    def stop(self, mode: str = "fast"):
        self._pg_ctl("-m", mode, "-w", "stop")

    def remove(self):
        import shutil

        subprocess.run(
            [*self.as_postgres, PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"postgres://postgres@{host}:{self.port}/promo"


@contextlib.contextmanager
def default_database_on(cluster: PrivatePostgres, django_db_blocker):
    """Point this process's default database at the private cluster, migrated."""
    from django.core.management import call_command
    from django.db import connections

    database = connections["default"]
    saved = dict(database.settings_dict)
    with django_db_blocker.unblock():
        database.close()
        database.settings_dict.update(
            NAME="promo", HOST="127.0.0.1", PORT=str(cluster.port), USER="postgres"
        )
        try:
            call_command("migrate", verbosity=0, interactive=False)
            yield cluster
        finally:
            database.close()
            database.settings_dict.clear()
            database.settings_dict.update(saved)
