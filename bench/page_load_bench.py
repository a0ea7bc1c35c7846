"""A pool page loaded cold in a real browser: how long until its load event, static files included.

    .venv/bin/python bench/page_load_bench.py          (make bench-pages)
    .venv/bin/python bench/page_load_bench.py --tiny   (one repetition's worth of checks, in CI)

Three servers on the benchmarks' own database (bench/common.py), each serving the same pool page
with everything it links (the admin's CSS and scripts, the product's own):
- "make run": runserver with DEBUG on, static files through WhiteNoise from the apps' folders;
- "production": gunicorn with DEBUG off, after collectstatic (hashed, compressed files);
- baseline: runserver with DEBUG on and Django's own static view (bench/settings_django_static.py).
Each repetition signs in, then opens the page in a new browser context (an empty cache) and reads
the navigation timing's load event. Figures: each mode's median load time in milliseconds, and the
ratio of each mode to the baseline: production at most 1.0 (never slower than Django's own), the
make-run mode reported (both serve the same unminified files from the same folders there).
Needs Chromium (/usr/bin/chromium) and the local PostgreSQL.
"""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import common

REPEAT = common.REPEAT
LOADS = common.size("BENCH_PAGE_LOADS", 5, 1)

common.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402

from pools.groups import MANAGERS  # noqa: E402
from pools.models import Campaign, Pool  # noqa: E402
from pools.services import pool_create  # noqa: E402

PYTHON = sys.executable
BIN = os.path.dirname(PYTHON)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(command: list[str], port: int, **environ: str):
    log_path = common.CACHE / f"page_load_{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, cwd=common.ROOT, env={**os.environ, **environ}, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(f"the server did not start: see {log_path}") from None
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def runserver(port: int, settings: str = "promo_project.settings"):
    return server(
        [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        port,
        DJANGO_SETTINGS_MODULE=settings,
        DJANGO_DEBUG="1",
        PYTHONPATH=f"{common.ROOT / 'bench'}",
    )


def gunicorn(port: int):
    production = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench",
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "STATIC_ROOT": str(common.CACHE / "static"),
    }
    subprocess.run(
        [PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=common.ROOT,
        env={**os.environ, **production},
        check=True,
    )
    return server(
        [f"{BIN}/gunicorn", "promo_project.wsgi", "-b", f"127.0.0.1:{port}", "-w", "6"],
        port,
        **production,
    )


def load_times(browser, base: str, path: str) -> list[float]:
    """Milliseconds from navigation start to the load event, each in a new (cold) context."""
    times = []
    for _ in range(LOADS):
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{base}/admin/login/?next={path}")
        page.fill("#id_username", "bench-manager")
        page.fill("#id_password", "bench-pass")
        page.click("input[type=submit]")
        page.wait_for_load_state("load")
        # Signing in warmed the cache with the admin's files: a second new context starts cold
        # again, with the session cookie carried over.
        cookies = context.cookies()
        context.close()
        context = browser.new_context()
        context.add_cookies(cookies)
        page = context.new_page()
        page.goto(f"{base}{path}", wait_until="load")
        times.append(
            page.evaluate(
                "() => { const t = performance.getEntriesByType('navigation')[0];"
                " return t.loadEventEnd - t.startTime; }"
            )
        )
        context.close()
    return times


def main() -> int:
    from playwright.sync_api import sync_playwright

    user, _ = get_user_model().objects.get_or_create(
        username="bench-manager", defaults={"is_staff": True}
    )
    user.set_password("bench-pass")
    user.save()
    user.groups.add(Group.objects.get(name=MANAGERS))
    pool = Pool.objects.filter(slug="page-load-bench").first() or pool_create(
        campaign=Campaign.objects.get_or_create(name="Page load bench")[0],
        description="Page load bench",
        slug="page-load-bench",
    )
    path = f"/admin/pools/pool/{pool.pk}/change/"

    medians = {"make run": [], "production": [], "Django's static view": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        for repetition in range(REPEAT):
            print(f"repetition {repetition + 1} of {REPEAT}", flush=True)
            for mode, start in (
                ("Django's static view", lambda port: runserver(port, "settings_django_static")),
                ("make run", runserver),
                ("production", gunicorn),
            ):
                port = free_port()
                with start(port) as base:
                    load_times(browser, base, path)  # the server's own first-request costs
                    times = load_times(browser, base, path)
                medians[mode].append(sorted(times)[len(times) // 2])
                print(f"  {mode}: {', '.join(f'{t:.0f}' for t in times)} ms", flush=True)
        browser.close()

    baseline = medians["Django's static view"]
    for mode in ("make run", "production", "Django's static view"):
        common.figure(f"cold pool page load, {mode} (ms)", medians[mode], "reported", 0)
    for mode, op in (("make run", "reported"), ("production", "<=")):
        ratios = [ours / theirs for ours, theirs in zip(medians[mode], baseline, strict=True)]
        common.figure(f"cold pool page load, {mode} / Django's static view", ratios, op, 1.0)
    return common.report()


if __name__ == "__main__":
    sys.exit(main())
