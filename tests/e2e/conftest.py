"""A real browser (Debian's Chromium, driven by Playwright) against the app served by a live
server, with a real Celery worker on Redis and the test's PostgreSQL database."""

import os
import shutil
from pathlib import Path

import pytest

from tests.worker import Worker, point_app_at, require_services, worker_env

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
# Under var/ so that a test run leaves the tree clean; `make screenshots` points this at
# docs/screenshots/ to refresh the README's pictures. A relative path is taken from the root.
SCREENSHOTS = ROOT / os.environ.get("SCREENSHOTS_DIR", "var/screenshots")


@pytest.fixture
def browser_page(live_server, monkeypatch):
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own database calls
    # are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        context.set_default_timeout(20_000)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        yield page
        browser.close()
        assert errors == [], f"JavaScript errors: {errors}"


@pytest.fixture
def live_worker(live_server, tmp_path):
    """A Celery worker taking the tasks the live server queues."""
    import redis

    url = require_services()
    redis.Redis.from_url(url).flushdb()
    point_app_at(url)
    worker = Worker(worker_env(url), tmp_path / "worker.log").start()
    yield worker
    worker.stop()


@pytest.fixture
def screenshot():
    def save(page, name: str, *, full_page: bool = False):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=SCREENSHOTS / f"{name}.jpg", type="jpeg", quality=70, full_page=full_page
        )

    return save
