"""What the benchmarks share: their own database and Redis, sizes, repetitions and the report.

- Their own PostgreSQL database, BENCH_DATABASE_URL (default
  postgres://postgres@127.0.0.1:5432/promo_bench, created if missing), and their own Redis
  database, BENCH_REDIS_URL (default redis://127.0.0.1:6379/14, emptied at the start), never the
  tests' or the app's. Uploads, logs and generated files stay under bench/.cache (git-ignored).
- `--tiny` (or BENCH_TINY=1) runs a benchmark at a size that takes seconds, as CI does so that a
  benchmark that no longer runs fails there. Its figures are printed but not judged: at that size
  fixed costs (a task's trip through the broker, starting client processes) outweigh the work.
- Each figure is the median of BENCH_REPEAT repetitions (default and least 3): one run on a
  shared two-core machine moves by 30%.
"""

import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
TINY = "--tiny" in sys.argv[1:] or os.environ.get("BENCH_TINY", "") not in ("", "0")
REPEAT = max(3, int(os.environ.get("BENCH_REPEAT", "3")))
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/promo_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def size(name: str, full: int | float, tiny: int | float) -> int | float:
    """Return the variable's value if set, else the full or the tiny default."""
    value = os.environ.get(name, "").strip()
    if value:
        return type(full)(value)
    return tiny if TINY else full


def label(rows: int) -> str:
    """Return a row count as figures name it: 10m, 100k, 3k."""
    return f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


def create_database() -> None:
    import psycopg

    base, name = DATABASE_URL.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def django_environ() -> dict[str, str]:
    """Return the variables that point Django at the benchmarks' own database, Redis and files
    (for a process that sets Django up without migrating: it touches no database)."""
    return {
        "DATABASE_URL": DATABASE_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "CACHE_URL": REDIS_URL,
        "MEDIA_ROOT": str(CACHE / "media"),
        "PROMO_VAR_DIR": str(CACHE / "var"),
        "DJANGO_SETTINGS_MODULE": "promo_project.settings",
        "LOG_LEVEL": "WARNING",
    }


def setup(**environ: str) -> None:
    """Point Django at the benchmark's own database, Redis and files; set it up and migrate.

    The variables are set in this process's environment, so the worker and server processes
    a benchmark starts inherit them.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    os.environ.update(django_environ(), **environ)
    sys.path.insert(0, str(ROOT))
    create_database()

    import django
    import redis

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(REDIS_URL).flushdb()


# Report

_figures: list[tuple[str, list[float], str, float]] = []


def figure(name: str, values: list[float], op: str, target: float) -> None:
    """Record a ratio measured once per repetition; print the repetitions and their median."""
    _figures.append((name, values, op, target))
    shown = ", ".join(f"{value:.2f}" for value in values)
    print(f"  {name}: {shown}; median {statistics.median(values):.2f}", flush=True)


def report() -> int:
    """Print each figure's median against its target; return the exit status."""
    print()
    missed = 0
    for name, values, op, target in _figures:
        median = statistics.median(values)
        if op == "reported":
            print(f"{name} = {median:.2f} (median of {len(values)}; reported, no target)")
            continue
        ok = median <= target if op == "<=" else median >= target
        missed += not ok
        verdict = "not judged (tiny)" if TINY else "ok" if ok else "MISSED"
        print(f"{name} = {median:.2f} (median of {len(values)}; target {op} {target}) {verdict}")
    if TINY:
        print("\nTiny size: this run shows that the benchmark works; its figures mean nothing.")
        return 0
    return 1 if missed else 0
